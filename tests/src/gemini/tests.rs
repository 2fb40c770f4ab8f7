//! Tests of the mock over real HTTP: Google's shapes, the strict checks, the token
//! exchange and the Vertex paths.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// POSTs `body` to `url` with these headers; status, headers and the whole body.
async fn post(url: &str, headers: &[(&str, &str)], body: &[u8]) -> (StatusCode, HeaderMap, Bytes) {
    let mut req = Request::builder().method(Method::POST).uri(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req.body(Full::new(Bytes::copy_from_slice(body))).unwrap();
    let response = client().request(req).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = match body.collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => Bytes::from_static(b"<cut>"),
    };
    (parts.status, parts.headers, body)
}

async fn studio(mock: &MockGemini, model_op: &str, body: Value) -> (StatusCode, HeaderMap, Bytes) {
    let url = format!("{}/models/{model_op}", mock.ai_studio_base());
    post(
        &url,
        &[
            ("x-goog-api-key", API_KEY),
            ("content-type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
    .await
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

fn hello() -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]})
}

/// The JSON of each `data:` event of a Gemini SSE body, which must be CRLF-framed.
fn sse_events(body: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(body).unwrap();
    assert!(text.ends_with("\r\n\r\n"), "{text:?}");
    text.split("\r\n\r\n")
        .filter(|e| !e.is_empty())
        .map(|e| json_of(e.strip_prefix("data: ").unwrap().as_bytes()))
        .collect()
}

fn texts(chunks: &[Value]) -> String {
    chunks
        .iter()
        .flat_map(|c| {
            c["candidates"][0]["content"]["parts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|p| p["text"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn generate_content_answers_in_googles_shape() {
    let mock = MockGemini::start().await;
    let mut body = hello();
    body["systemInstruction"] = json!({"parts": [{"text": "be brief"}]});
    let (status, headers, bytes) = studio(&mock, "gemini-2.0-flash:generateContent", body).await;
    assert_eq!(status, 200);
    assert_eq!(headers[CONTENT_TYPE], JSON);
    assert!(
        bytes.starts_with(b"{\n  \""),
        "pretty-printed like Google's"
    );
    let v = json_of(&bytes);
    let candidate = &v["candidates"][0];
    assert_eq!(candidate["content"]["role"], "model");
    assert_eq!(
        candidate["content"]["parts"][0]["text"],
        "mock reply to: hello there"
    );
    assert_eq!(candidate["finishReason"], "STOP");
    assert_eq!(candidate["index"], 0);
    assert_eq!(v["usageMetadata"]["promptTokenCount"], 4);
    assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 5);
    assert_eq!(v["usageMetadata"]["totalTokenCount"], 9);
    assert_eq!(v["modelVersion"], "gemini-2.0-flash");
    let recorded = &mock.model_requests()[0];
    assert_eq!(
        recorded.path,
        "/v1beta/models/gemini-2.0-flash:generateContent"
    );
}

#[tokio::test]
async fn api_keys_are_checked_like_google_does() {
    let mock = MockGemini::start().await;
    let url = format!("{}/models/m:generateContent", mock.ai_studio_base());
    let body = hello().to_string();
    let (status, _, bytes) = post(&url, &[], body.as_bytes()).await;
    assert_eq!(
        (status.as_u16(), json_of(&bytes)["error"]["status"].clone()),
        (403, json!("PERMISSION_DENIED"))
    );
    let (status, _, bytes) = post(&url, &[("x-goog-api-key", "wrong")], body.as_bytes()).await;
    let error = &json_of(&bytes)["error"];
    assert_eq!(status, 400, "a bad key is a 400 at Google");
    assert_eq!(
        error["message"],
        "API key not valid. Please pass a valid API key."
    );
    assert_eq!(error["details"][0]["reason"], "API_KEY_INVALID");
    let keyed = format!("{url}?key={API_KEY}");
    assert_eq!(post(&keyed, &[], body.as_bytes()).await.0, 200);
    assert_eq!(mock.model_requests().len(), 3);
}

#[tokio::test]
async fn sse_streams_are_crlf_framed_and_end_with_usage() {
    let mock = MockGemini::start().await;
    let (status, headers, bytes) = studio(&mock, "m:streamGenerateContent?alt=sse", hello()).await;
    assert_eq!(status, 200);
    assert_eq!(headers[CONTENT_TYPE], EVENT_STREAM);
    assert!(!bytes.windows(6).any(|w| w == b"[DONE]"));
    let chunks = sse_events(&bytes);
    assert!(chunks.len() >= 3, "{chunks:?}");
    assert_eq!(texts(&chunks), "mock reply to: hello there");
    let last = chunks.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["usageMetadata"]["candidatesTokenCount"], 5);
    assert!(chunks[0]["candidates"][0].get("finishReason").is_none());
    assert_eq!(
        chunks[0]["usageMetadata"]["promptTokenCount"], 2,
        "running usage on every chunk"
    );

    // Without alt=sse Google streams one JSON array.
    let (_, headers, bytes) = studio(&mock, "m:streamGenerateContent", hello()).await;
    assert_eq!(headers[CONTENT_TYPE], JSON);
    let array = json_of(&bytes);
    assert_eq!(
        texts(array.as_array().unwrap()),
        "mock reply to: hello there"
    );
}

fn weather_tools() -> Value {
    json!([{"functionDeclarations": [
        {"name": "get_weather", "description": "Weather in a city",
         "parameters": {"type": "object", "properties": {
            "city": {"type": "string"}, "days": {"type": "integer"},
            "unit": {"type": "string", "enum": ["C", "F"]}}, "required": ["city"]}},
        {"name": "get_time", "parameters": {"type": "OBJECT", "properties": {"zone": {"type": "STRING"}}}}
    ]}])
}

#[tokio::test]
async fn function_calls_and_responses_round_trip() {
    let mock = MockGemini::start().await;
    let mut body = hello();
    body["tools"] = weather_tools();
    let (status, _, bytes) = studio(&mock, "mock-tool-call:generateContent", body.clone()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    let v = json_of(&bytes);
    let candidate = &v["candidates"][0];
    assert_eq!(
        candidate["finishReason"], "STOP",
        "no tool-call finish reason at Google"
    );
    let call = &candidate["content"]["parts"][0]["functionCall"];
    assert_eq!(
        call,
        &json!({"name": "get_weather", "args": {"city": "mock-city", "days": 1, "unit": "C"}})
    );

    let (_, _, bytes) = studio(&mock, "mock-two-cities:generateContent", body.clone()).await;
    let cities = json_of(&bytes)["candidates"][0]["content"]["parts"].clone();
    assert_eq!(
        cities[1]["functionCall"],
        json!({"name": "get_weather", "args": {"city": "Rome"}})
    );
    let (_, _, bytes) = studio(&mock, "mock-max-tokens:generateContent", hello()).await;
    let v = json_of(&bytes);
    assert_eq!(v["candidates"][0]["finishReason"], "MAX_TOKENS");
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["text"],
        "mock reply to: "
    );
    let (_, _, bytes) = studio(&mock, "mock-parallel-tools:generateContent", body.clone()).await;
    let parts = json_of(&bytes)["candidates"][0]["content"]["parts"].clone();
    assert_eq!(parts.as_array().unwrap().len(), 2);
    assert_eq!(
        parts[1]["functionCall"]["args"],
        json!({"zone": "mock-zone"})
    );

    // Both results must come back in one turn right after the call turn.
    let contents = json!([
        {"role": "user", "parts": [{"text": "weather and time?"}]},
        {"role": "model", "parts": [{"functionCall": parts[0]["functionCall"]}, {"functionCall": parts[1]["functionCall"]}]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
            {"functionResponse": {"name": "get_time", "response": {"time": "12:00"}}}]}
    ]);
    body["contents"] = contents.clone();
    let (status, _, bytes) =
        studio(&mock, "mock-parallel-tools:generateContent", body.clone()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(
        json_of(&bytes)["candidates"][0]["content"]["parts"][0]["text"],
        r#"mock saw tool results: get_weather={"temp":21} get_time={"time":"12:00"}"#
    );

    // One response for two calls is refused, as is a bare string response.
    body["contents"][2]["parts"].as_array_mut().unwrap().pop();
    let (status, _, bytes) = studio(&mock, "m:generateContent", body.clone()).await;
    assert_eq!(status, 400);
    assert!(
        json_of(&bytes)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("number of function response parts")
    );
    body["contents"] = contents;
    body["contents"][2]["parts"][1]["functionResponse"]["response"] = json!("12:00");
    let (status, _, bytes) = studio(&mock, "m:generateContent", body).await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&bytes).contains("google.protobuf.Struct"));
}

#[tokio::test]
async fn tool_config_any_forces_a_call_and_none_forbids_it() {
    let mock = MockGemini::start().await;
    let mut body = hello();
    body["tools"] = weather_tools();
    body["toolConfig"] =
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}});
    let (_, _, bytes) = studio(&mock, "m:generateContent", body.clone()).await;
    assert_eq!(
        json_of(&bytes)["candidates"][0]["content"]["parts"][0]["functionCall"]["name"],
        "get_time"
    );
    body["toolConfig"] = json!({"functionCallingConfig": {"mode": "NONE"}});
    let (_, _, bytes) = studio(&mock, "mock-tool-call:generateContent", body.clone()).await;
    assert!(json_of(&bytes)["candidates"][0]["content"]["parts"][0]["text"].is_string());
    body["toolConfig"] = json!({"functionCallingConfig": {"mode": "REQUIRED"}});
    assert_eq!(studio(&mock, "m:generateContent", body).await.0, 400);
}

#[tokio::test]
async fn unknown_fields_and_json_schema_keywords_are_refused_with_their_paths() {
    let mock = MockGemini::start().await;
    let mut body = hello();
    body["generationConfig"] = json!({"max_tokens": 5});
    body["tools"] = json!([{"functionDeclarations": [{"name": "f", "parameters": {
        "type": "object", "additionalProperties": false, "$schema": "x",
        "properties": {"a": {"type": "string", "const": "x"}}}}]}]);
    let (status, _, bytes) = studio(&mock, "m:generateContent", body).await;
    assert_eq!(status, 400);
    let error = &json_of(&bytes)["error"];
    assert_eq!(error["status"], "INVALID_ARGUMENT");
    let message = error["message"].as_str().unwrap();
    for line in [
        r#"Unknown name "max_tokens" at 'generation_config': Cannot find field."#,
        r#"Unknown name "additionalProperties" at 'tools[0].function_declarations[0].parameters': Cannot find field."#,
        r#"Unknown name "$schema" at 'tools[0].function_declarations[0].parameters'"#,
        r#"Unknown name "const" at 'tools[0].function_declarations[0].parameters.properties[0].value'"#,
    ] {
        assert!(message.contains(line), "{line} not in {message}");
    }
    assert_eq!(
        error["details"][0]["@type"],
        "type.googleapis.com/google.rpc.BadRequest"
    );
    assert_eq!(
        error["details"][0]["fieldViolations"]
            .as_array()
            .unwrap()
            .len(),
        4
    );

    // Objects without properties, type arrays and non-string enums are refused too.
    let mut body = hello();
    body["tools"] = json!([{"functionDeclarations": [{"name": "f", "parameters": {"type": "object", "properties": {}}}]}]);
    let (_, _, bytes) = studio(&mock, "m:generateContent", body.clone()).await;
    assert!(String::from_utf8_lossy(&bytes).contains("should be non-empty for OBJECT type"));
    body["tools"][0]["functionDeclarations"][0]["parameters"] = json!({"type": "object", "properties": {"a": {"type": ["string", "null"]}, "b": {"type": "integer", "enum": [1, 2]}}});
    let (_, _, bytes) = studio(&mock, "m:generateContent", body.clone()).await;
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("properties[0].value.type"), "{text}");
    assert!(
        text.contains("properties[1].value.enum[0]' (TYPE_STRING)"),
        "{text}"
    );
    body["tools"][0]["functionDeclarations"][0] = json!({"name": "no spaces allowed"});
    let (_, _, bytes) = studio(&mock, "m:generateContent", body).await;
    assert!(String::from_utf8_lossy(&bytes).contains("Invalid function name"));

    // Off, anything parseable goes.
    mock.set_strict(false);
    let mut body = hello();
    body["bogus"] = json!(1);
    assert_eq!(studio(&mock, "m:generateContent", body).await.0, 200);
}

#[tokio::test]
async fn turns_must_alternate_and_parts_must_hold_data() {
    let mock = MockGemini::start().await;
    let two_users = json!({"contents": [
        {"role": "user", "parts": [{"text": "a"}]}, {"role": "user", "parts": [{"text": "b"}]}]});
    let (_, _, bytes) = studio(&mock, "m:generateContent", two_users).await;
    assert!(String::from_utf8_lossy(&bytes).contains("alternate between user and model"));
    for bad in [
        json!({"contents": []}),
        json!({"contents": [{"role": "user", "parts": []}]}),
        json!({"contents": [{"role": "user", "parts": [{"text": ""}]}]}),
        json!({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}),
        json!({"contents": [{"role": "user", "parts": [{"text": "x", "inlineData": {"mimeType": "image/png", "data": "AA=="}}]}]}),
        json!({"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": "not base64!"}}]}]}),
    ] {
        let (status, _, bytes) = studio(&mock, "m:generateContent", bad.clone()).await;
        assert_eq!(status, 400, "{bad} got {}", String::from_utf8_lossy(&bytes));
    }
}

#[tokio::test]
async fn images_stops_limits_and_json_mode_shape_the_reply() {
    let mock = MockGemini::start().await;
    let body = json!({"contents": [{"role": "user", "parts": [
        {"text": "what is this?"}, {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}]}]});
    let (_, _, bytes) = studio(&mock, "m:generateContent", body).await;
    let v = json_of(&bytes);
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["text"],
        "mock reply to: what is this? [image/png 8 bytes]"
    );
    assert_eq!(v["usageMetadata"]["promptTokenCount"], 3 + 258);

    let mut body = hello();
    body["generationConfig"] = json!({"stopSequences": [" there"], "candidateCount": 2});
    let v = json_of(&studio(&mock, "m:generateContent", body).await.2);
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["text"],
        "mock reply to: hello"
    );
    assert_eq!(v["candidates"][1]["index"], 1);

    let mut body = hello();
    body["generationConfig"] = json!({"maxOutputTokens": 2});
    let v = json_of(&studio(&mock, "m:generateContent", body).await.2);
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["text"],
        "mock reply "
    );
    assert_eq!(v["candidates"][0]["finishReason"], "MAX_TOKENS");

    let mut body = hello();
    body["generationConfig"] = json!({"responseMimeType": "application/json", "responseSchema": {
        "type": "OBJECT", "properties": {"name": {"type": "STRING"}, "n": {"type": "INTEGER"}}}});
    let v = json_of(&studio(&mock, "m:generateContent", body).await.2);
    let text = v["candidates"][0]["content"]["parts"][0]["text"]
        .as_str()
        .unwrap();
    assert_eq!(
        json_of(text.as_bytes()),
        json!({"name": "mock-name", "n": 1})
    );
}

#[tokio::test]
async fn thinking_caching_and_safety_models() {
    let mock = MockGemini::start().await;
    let mut body = hello();
    body["generationConfig"] = json!({"thinkingConfig": {"includeThoughts": true}});
    let v = json_of(&studio(&mock, "mock-thinking:generateContent", body).await.2);
    let parts = &v["candidates"][0]["content"]["parts"];
    assert_eq!(parts[0]["thought"], true);
    assert_eq!(v["usageMetadata"]["thoughtsTokenCount"], 7);
    assert_eq!(v["usageMetadata"]["totalTokenCount"], 2 + 5 + 7);
    let v = json_of(
        &studio(&mock, "mock-thinking:generateContent", hello())
            .await
            .2,
    );
    assert!(
        v["candidates"][0]["content"]["parts"][0]
            .get("thought")
            .is_none(),
        "thoughts only when asked"
    );

    let v = json_of(
        &studio(&mock, "mock-cached:generateContent", hello())
            .await
            .2,
    );
    assert_eq!(v["usageMetadata"]["cachedContentTokenCount"], 1);

    let v = json_of(
        &studio(&mock, "mock-blocked:generateContent", hello())
            .await
            .2,
    );
    assert_eq!(v["promptFeedback"]["blockReason"], "SAFETY");
    assert!(v.get("candidates").is_none());
    let v = json_of(
        &studio(&mock, "mock-safety:generateContent", hello())
            .await
            .2,
    );
    assert_eq!(v["candidates"][0]["finishReason"], "SAFETY");
    assert!(v["candidates"][0].get("content").is_none());
    assert_eq!(v["candidates"][0]["safetyRatings"][3]["blocked"], true);
    let (status, _, bytes) =
        studio(&mock, "mock-safety:streamGenerateContent?alt=sse", hello()).await;
    assert_eq!(status, 200);
    assert_eq!(
        sse_events(&bytes)[0]["candidates"][0]["finishReason"],
        "SAFETY"
    );
}

#[tokio::test]
async fn errors_and_broken_answers_by_model_name() {
    let mock = MockGemini::start().await;
    for (model, code, status) in [
        ("mock-error-400", 400, "INVALID_ARGUMENT"),
        ("mock-error-401", 401, "UNAUTHENTICATED"),
        ("mock-error-403", 403, "PERMISSION_DENIED"),
        ("mock-error-404", 404, "NOT_FOUND"),
        ("mock-error-429", 429, "RESOURCE_EXHAUSTED"),
        ("mock-error-500", 500, "INTERNAL"),
        ("mock-error-503", 503, "UNAVAILABLE"),
    ] {
        let (got, _, bytes) = studio(&mock, &format!("{model}:generateContent"), hello()).await;
        let error = &json_of(&bytes)["error"];
        assert_eq!(
            (
                got.as_u16(),
                error["code"].as_u64(),
                error["status"].as_str()
            ),
            (code, Some(u64::from(code)), Some(status))
        );
    }
    let (_, headers, bytes) = studio(&mock, "mock-error-429:generateContent", hello()).await;
    assert!(headers.get("retry-after").is_none());
    assert_eq!(json_of(&bytes)["error"]["details"][2]["retryDelay"], "1s");
    let (status, _, bytes) = studio(&mock, "mock-context-length:generateContent", hello()).await;
    assert_eq!(status, 400);
    assert!(
        String::from_utf8_lossy(&bytes).contains("exceeds the maximum number of tokens allowed")
    );

    let (status, _, bytes) = studio(&mock, "mock-malformed:generateContent", hello()).await;
    assert_eq!(status, 200);
    assert!(serde_json::from_slice::<Value>(&bytes).is_err());
    let (_, _, bytes) = studio(
        &mock,
        "mock-malformed:streamGenerateContent?alt=sse",
        hello(),
    )
    .await;
    assert!(
        serde_json::from_slice::<Value>(&bytes[6..]).is_err(),
        "garbled from the start"
    );
    let (_, _, bytes) = studio(
        &mock,
        "mock-garbled-stream:streamGenerateContent?alt=sse",
        hello(),
    )
    .await;
    let text = String::from_utf8_lossy(&bytes);
    let events: Vec<&str> = text.split("\r\n\r\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.len(), 2);
    assert!(serde_json::from_str::<Value>(events[1].trim_start_matches("data: ")).is_err());
    let (_, _, bytes) = studio(
        &mock,
        "mock-stream-cut:streamGenerateContent?alt=sse",
        hello(),
    )
    .await;
    assert_eq!(&bytes[..], b"<cut>");
    let (_, _, bytes) = studio(
        &mock,
        "mock-stream-error:streamGenerateContent?alt=sse",
        hello(),
    )
    .await;
    let events = sse_events(&bytes);
    assert_eq!(events[1]["error"]["status"], "UNAVAILABLE");

    let (status, headers, _) = post(
        &format!("http://{}/v1beta/nowhere", mock.addr()),
        &[],
        b"{}",
    )
    .await;
    assert_eq!(status, 404);
    assert!(
        headers[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

#[tokio::test]
async fn scripted_replies_are_served_after_the_checks() {
    let mock = MockGemini::start().await;
    mock.enqueue(Reply::error(503, "busy", "", None));
    mock.enqueue(Reply::chunks(vec![json!({"candidates": [{"content": {"parts": [{"text": "hi"}], "role": "model"}, "finishReason": "STOP"}]})]));
    mock.enqueue(Reply::raw_stream(&[
        "data: {\"candid",
        "ates\": []}\r\n\r\n",
    ]));
    // An invalid request is refused without taking the queued reply.
    assert_eq!(
        studio(&mock, "m:generateContent", json!({"contents": []}))
            .await
            .0,
        400
    );
    let (status, _, bytes) = studio(&mock, "m:generateContent", hello()).await;
    assert_eq!(
        (status.as_u16(), json_of(&bytes)["error"]["message"].clone()),
        (503, json!("busy"))
    );
    let (_, _, bytes) = studio(&mock, "m:streamGenerateContent?alt=sse", hello()).await;
    assert_eq!(texts(&sse_events(&bytes)), "hi");
    let (_, headers, bytes) = studio(&mock, "m:streamGenerateContent?alt=sse", hello()).await;
    assert_eq!(headers[CONTENT_TYPE], EVENT_STREAM);
    assert_eq!(&bytes[..], b"data: {\"candidates\": []}\r\n\r\n");
}

#[tokio::test]
async fn embeddings_single_batch_and_vertex_predict() {
    let mock = MockGemini::start().await;
    let one = json!({"content": {"parts": [{"text": "hello"}]}, "taskType": "RETRIEVAL_QUERY", "outputDimensionality": 4});
    let v = json_of(
        &studio(&mock, "text-embedding-004:embedContent", one)
            .await
            .2,
    );
    assert_eq!(v["embedding"]["values"].as_array().unwrap().len(), 4);
    let batch = json!({"requests": [
        {"model": "models/text-embedding-004", "content": {"parts": [{"text": "a"}]}},
        {"model": "models/text-embedding-004", "content": {"parts": [{"text": "b"}]}}]});
    let v = json_of(
        &studio(
            &mock,
            "text-embedding-004:batchEmbedContents",
            batch.clone(),
        )
        .await
        .2,
    );
    let embeddings = v["embeddings"].as_array().unwrap();
    assert_eq!(embeddings.len(), 2);
    assert_ne!(embeddings[0], embeddings[1]);
    assert_eq!(v["usageMetadata"]["promptTokenCount"], 2);
    let old = studio(
        &mock,
        "mock-no-usage:embedContent",
        json!({"content": {"parts": [{"text": "a"}]}}),
    );
    assert!(json_of(&old.await.2).get("usageMetadata").is_none());
    let many: Vec<Value> = (0..101)
        .map(|_| json!({"model": "models/text-embedding-004", "content": {"parts": [{"text": "a"}]}}))
        .collect();
    let (status, _, bytes) = studio(
        &mock,
        "text-embedding-004:batchEmbedContents",
        json!({"requests": many}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&bytes).contains("at most 100 requests can be in one batch"));
    let mut unnamed = batch;
    unnamed["requests"][1]
        .as_object_mut()
        .unwrap()
        .remove("model");
    let (status, _, bytes) = studio(&mock, "text-embedding-004:batchEmbedContents", unnamed).await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&bytes));

    let token = token(&mock).await;
    let url = format!(
        "{}/v1/projects/{PROJECT}/locations/us-central1/publishers/google/models/text-embedding-005:predict",
        mock.vertex_base()
    );
    let bearer = format!("Bearer {token}");
    let body = json!({"instances": [{"content": "a b c", "task_type": "RETRIEVAL_DOCUMENT"}, {"content": "d"}], "parameters": {"outputDimensionality": 3}});
    let (status, _, bytes) = post(
        &url,
        &[("authorization", &bearer)],
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    let v = json_of(&bytes);
    assert_eq!(
        v["predictions"][0]["embeddings"]["statistics"]["token_count"],
        3
    );
    assert_eq!(
        v["predictions"][1]["embeddings"]["values"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let gemini = url.replace("text-embedding-005", "gemini-embedding-001");
    assert_eq!(
        post(
            &gemini,
            &[("authorization", &bearer)],
            body.to_string().as_bytes()
        )
        .await
        .0,
        400
    );
}

/// A token from the mock's endpoint, got the way a client would.
async fn token(mock: &MockGemini) -> String {
    let now = oauth::now_for_tests();
    let jwt = oauth::sign(
        &json!({"alg": "RS256", "typ": "JWT", "kid": PRIVATE_KEY_ID}),
        &json!({"iss": CLIENT_EMAIL, "scope": SCOPE, "aud": mock.token_url(), "iat": now, "exp": now + 3600}),
    );
    let form =
        format!("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={jwt}");
    let (status, _, bytes) = post(
        &mock.token_url(),
        &[("content-type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    json_of(&bytes)["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn vertex_paths_need_an_issued_token_and_the_right_project() {
    let mock = MockGemini::start().await;
    let url = |project: &str| {
        format!(
            "{}/v1/projects/{project}/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent",
            mock.vertex_base()
        )
    };
    let body = hello().to_string();
    let (status, _, bytes) = post(&url(PROJECT), &[], body.as_bytes()).await;
    assert_eq!(
        (status.as_u16(), json_of(&bytes)["error"]["status"].clone()),
        (401, json!("UNAUTHENTICATED"))
    );
    let (_, _, bytes) = post(
        &url(PROJECT),
        &[("x-goog-api-key", API_KEY)],
        body.as_bytes(),
    )
    .await;
    assert!(
        json_of(&bytes)["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("API keys are not supported")
    );

    let bearer = format!("Bearer {}", token(&mock).await);
    assert_eq!(mock.tokens_issued(), 1);
    let (status, _, bytes) = post(
        &url(PROJECT),
        &[("authorization", &bearer)],
        body.as_bytes(),
    )
    .await;
    assert_eq!(status, 200);
    let v = json_of(&bytes);
    assert!(
        v["candidates"][0].get("index").is_none(),
        "Vertex leaves index 0 out"
    );
    assert!(v["createTime"].is_string());
    let (status, _, _) = post(
        &url("other-project"),
        &[("authorization", &bearer)],
        body.as_bytes(),
    )
    .await;
    assert_eq!(status, 403);

    mock.revoke_tokens();
    assert_eq!(
        post(
            &url(PROJECT),
            &[("authorization", &bearer)],
            body.as_bytes()
        )
        .await
        .0,
        401
    );
    mock.set_token_lifetime(Duration::ZERO);
    let expired = format!("Bearer {}", token(&mock).await);
    assert_eq!(
        post(
            &url(PROJECT),
            &[("authorization", &expired)],
            body.as_bytes()
        )
        .await
        .0,
        401
    );

    mock.fail_token_requests(Some((
        400,
        json!({"error": "invalid_grant", "error_description": "account disabled"}),
    )));
    let form = b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=x";
    let (status, _, bytes) = post(
        &mock.token_url(),
        &[("content-type", "application/x-www-form-urlencoded")],
        form,
    )
    .await;
    assert_eq!(
        (status.as_u16(), json_of(&bytes)["error"].clone()),
        (400, json!("invalid_grant"))
    );
}

#[test]
fn the_service_account_file_names_the_token_uri_and_the_test_key() {
    let key: Value =
        serde_json::from_str(&service_account_json("http://127.0.0.1:1/token")).unwrap();
    assert_eq!(key["type"], "service_account");
    assert_eq!(key["token_uri"], "http://127.0.0.1:1/token");
    assert_eq!(key["client_email"], CLIENT_EMAIL);
    assert!(
        key["private_key"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
}

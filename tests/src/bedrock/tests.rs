//! The Bedrock mock's own tests, over real HTTP with real signatures.

// Test code may panic on broken expectations; that is how it reports them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use http::Response;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Signs (with `creds`) and sends a POST of `body` to `model`'s `op`.
async fn call_as(
    mock: &MockBedrock,
    creds: &Credentials,
    model: &str,
    op: &str,
    body: &Value,
) -> Response<Incoming> {
    let url: http::Uri = mock.url(model, op).parse().unwrap();
    let mut rec = Recorded {
        method: Method::POST,
        path: url.path().to_owned(),
        headers: http::HeaderMap::new(),
        body: Bytes::from(body.to_string()),
    };
    rec.headers
        .insert("content-type", HeaderValue::from_static(JSON));
    sigv4::sign(
        &mut rec,
        url.authority().unwrap().as_str(),
        creds,
        REGION,
        "bedrock",
        SystemTime::now(),
    );
    let mut builder = http::Request::post(url);
    for (name, value) in &rec.headers {
        builder = builder.header(name, value);
    }
    client()
        .request(builder.body(Full::new(rec.body)).unwrap())
        .await
        .unwrap()
}

async fn call(mock: &MockBedrock, model: &str, op: &str, body: &Value) -> Response<Incoming> {
    let creds = mock.credentials().clone();
    call_as(mock, &creds, model, op, body).await
}

async fn json_of(response: Response<Incoming>) -> (StatusCode, http::HeaderMap, Value) {
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (parts.status, parts.headers, value)
}

/// The exception a response names in `x-amzn-ErrorType`.
fn error_type(headers: &http::HeaderMap) -> &str {
    headers["x-amzn-errortype"].to_str().unwrap()
}

fn hello() -> Value {
    json!({"messages": [{"role": "user", "content": [{"text": "hello there"}]}]})
}

#[tokio::test]
async fn converse_answers_in_bedrocks_shape() {
    let mock = MockBedrock::start().await;
    let model = "anthropic.claude-3-haiku-20240307-v1:0";
    let (status, headers, body) = json_of(call(&mock, model, "converse", &hello()).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(headers.contains_key("x-amzn-requestid"));
    assert_eq!(body["output"]["message"]["role"], "assistant");
    assert_eq!(
        body["output"]["message"]["content"][0]["text"],
        "mock reply to: hello there"
    );
    assert_eq!(body["stopReason"], "end_turn");
    assert_eq!(body["usage"]["inputTokens"], 2);
    assert_eq!(body["usage"]["outputTokens"], 5);
    assert_eq!(body["usage"]["totalTokens"], 7);
    assert!(body["metrics"]["latencyMs"].is_u64());
    let recorded = &mock.requests()[0];
    assert_eq!(
        recorded.path,
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    );
}

#[tokio::test]
async fn converse_stream_sends_valid_frames() {
    let mock = MockBedrock::start().await;
    let response = call(&mock, "mock-tool-call", "converse-stream", &json!({
        "messages": [{"role": "user", "content": [{"text": "weather?"}]}],
        "toolConfig": {"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}}]}
    }))
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], EVENTSTREAM);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let messages = eventstream::decode_all(&bytes).unwrap();
    let kinds: Vec<&str> = messages
        .iter()
        .map(|m| m.header(":event-type").unwrap())
        .collect();
    assert_eq!(kinds[0], "messageStart");
    assert!(kinds.contains(&"contentBlockStart"));
    assert_eq!(kinds[kinds.len() - 2..], ["messageStop", "metadata"]);
    let input: String = messages
        .iter()
        .filter_map(|m| {
            m.json()["delta"]["toolUse"]["input"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(input, r#"{"city":"mock-city"}"#);
    let stop = messages
        .iter()
        .find(|m| m.header(":event-type") == Some("messageStop"))
        .unwrap();
    assert_eq!(stop.json()["stopReason"], "tool_use");
    let meta = messages.last().unwrap().json();
    assert!(meta["usage"]["totalTokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn bad_signatures_are_refused_like_aws() {
    let mock = MockBedrock::start().await;
    let wrong = Credentials::new(ACCESS_KEY_ID, "not-the-secret");
    let (status, headers, body) =
        json_of(call_as(&mock, &wrong, "m", "converse", &hello()).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(error_type(&headers).starts_with("InvalidSignatureException:"));
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("/model/m/converse"), "{message}");

    let unknown = Credentials::new("AKIAOTHER", SECRET_ACCESS_KEY);
    let (status, headers, _) =
        json_of(call_as(&mock, &unknown, "m", "converse", &hello()).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(error_type(&headers).starts_with("UnrecognizedClientException"));

    let unsigned = http::Request::post(mock.url("m", "converse"))
        .body(Full::new(Bytes::from(hello().to_string())))
        .unwrap();
    let (status, _, body) = json_of(client().request(unsigned).await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["message"], "Missing Authentication Token");

    let bearer = http::Request::post(mock.url("m", "converse"))
        .header("authorization", format!("Bearer {API_KEY}"))
        .body(Full::new(Bytes::from(hello().to_string())))
        .unwrap();
    let (status, _, _) = json_of(client().request(bearer).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    // Refused requests never consumed a scripted reply.
    assert_eq!(mock.request_count(), 4);
}

#[tokio::test]
async fn session_tokens_are_checked() {
    let creds = Credentials::new("ASIAMOCK", "temp-secret").with_session_token("FwoGZXIvYXdzEMock");
    let mock = MockBedrock::start_with(Bedrock::with_credentials(creds.clone())).await;
    let (status, _, _) = json_of(call_as(&mock, &creds, "m", "converse", &hello()).await).await;
    assert_eq!(status, StatusCode::OK);
    let no_token = Credentials::new("ASIAMOCK", "temp-secret");
    let (status, _, _) = json_of(call_as(&mock, &no_token, "m", "converse", &hello()).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn model_ids_script_exceptions() {
    let mock = MockBedrock::start().await;
    for (name, status) in [
        ("ValidationException", 400),
        ("AccessDeniedException", 403),
        ("ResourceNotFoundException", 404),
        ("ModelTimeoutException", 408),
        ("ModelErrorException", 424),
        ("ThrottlingException", 429),
        ("ModelNotReadyException", 429),
        ("InternalServerException", 500),
        ("ServiceUnavailableException", 503),
    ] {
        let model = format!("mock-exception-{name}");
        let (got, headers, body) = json_of(call(&mock, &model, "converse", &hello()).await).await;
        assert_eq!(got.as_u16(), status, "{name}");
        assert!(
            error_type(&headers).starts_with(&format!("{name}:")),
            "{name}"
        );
        assert!(body["message"].is_string());
    }
    let (status, _, body) =
        json_of(call(&mock, "mock-context-length", "converse", &hello()).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["message"], "Input is too long for requested model.");
    let (status, headers, _) =
        json_of(call(&mock, "m", "converse", &json!({"messages": "nope"})).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_type(&headers).starts_with("ValidationException"));
}

#[tokio::test]
async fn broken_streams_break_as_scripted() {
    let mock = MockBedrock::start().await;
    let stream = async |model: &str| {
        let response = call(&mock, model, "converse-stream", &hello()).await;
        response.into_body().collect().await.map(|b| b.to_bytes())
    };
    let bad = stream("mock-stream-bad-crc").await.unwrap();
    assert_eq!(
        eventstream::decode_all(&bad).unwrap_err(),
        "message CRC mismatch"
    );
    let bad = stream("mock-stream-bad-prelude").await.unwrap();
    assert_eq!(
        eventstream::decode_all(&bad).unwrap_err(),
        "prelude CRC mismatch"
    );
    let cut = stream("mock-stream-cut").await;
    assert!(cut.is_err(), "the connection is cut");
    let exc = stream("mock-stream-exception-throttlingException")
        .await
        .unwrap();
    let messages = eventstream::decode_all(&exc).unwrap();
    let last = messages.last().unwrap();
    assert_eq!(last.header(":message-type"), Some("exception"));
    assert_eq!(last.header(":exception-type"), Some("throttlingException"));
    let malformed = stream("mock-stream-malformed").await.unwrap();
    let messages = eventstream::decode_all(&malformed).unwrap();
    assert!(messages[2].json().is_null());
}

#[tokio::test]
async fn scripted_replies_and_rechunking() {
    let mock = MockBedrock::start().await;
    mock.enqueue(
        Reply::exception("ThrottlingException", "slow down").with_header("retry-after", "2"),
    );
    mock.enqueue(
        Reply::events(&[
            Message::event("messageStart", &json!({"role": "assistant"})),
            Message::event("messageStop", &json!({"stopReason": "end_turn"})),
        ])
        .with_rechunk(5),
    );
    let (status, headers, body) = json_of(call(&mock, "m", "converse", &hello()).await).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "2");
    assert_eq!(body, json!({"message": "slow down"}));
    let response = call(&mock, "m", "converse-stream", &hello()).await;
    let mut body = response.into_body();
    let mut frames = Vec::new();
    while let Some(frame) = body.frame().await {
        frames.push(frame.unwrap().into_data().unwrap());
    }
    assert!(frames.iter().all(|f| f.len() <= 5));
    assert_eq!(eventstream::decode_all(&frames.concat()).unwrap().len(), 2);
}

#[tokio::test]
async fn invoke_model_embeds_with_token_count_header() {
    let mock = MockBedrock::start().await;
    let (status, headers, body) = json_of(
        call(
            &mock,
            "amazon.titan-embed-text-v2:0",
            "invoke",
            &json!({"inputText": "a b c"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-amzn-bedrock-input-token-count"], "3");
    assert_eq!(body["embedding"].as_array().unwrap().len(), 1024);
    let (status, _, body) = json_of(
        call(
            &mock,
            "cohere.embed-multilingual-v3",
            "invoke",
            &json!({"texts": ["x"], "input_type": "search_query"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["response_type"], "embeddings_floats");
}

#[tokio::test]
async fn temporary_keys_from_the_keyring_sign_until_they_expire() {
    let mock = MockBedrock::start().await;
    let model = "anthropic.claude-3-haiku-20240307-v1:0";
    let (temporary, _) = mock.keyring().issue(Duration::from_secs(60));
    let (status, _, body) =
        json_of(call_as(&mock, &temporary, model, "converse", &hello()).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Without its session token the key is not recognized.
    let bare = Credentials::new(&temporary.access_key_id, &temporary.secret_access_key);
    let (status, headers, _) =
        json_of(call_as(&mock, &bare, model, "converse", &hello()).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(error_type(&headers).starts_with("UnrecognizedClientException:"));
    mock.keyring().expire_all();
    let (status, headers, body) =
        json_of(call_as(&mock, &temporary, model, "converse", &hello()).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(error_type(&headers).starts_with("ExpiredTokenException:"));
    assert_eq!(
        body["message"],
        "The security token included in the request is expired"
    );
    mock.keyring().revoke_all();
    let (_, headers, _) =
        json_of(call_as(&mock, &temporary, model, "converse", &hello()).await).await;
    assert!(error_type(&headers).starts_with("UnrecognizedClientException:"));
}

//! Unit tests of the Gemini translation: URLs, request, response, stream and errors.

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value, json};

use super::*;
use crate::config::snapshot::{ProviderKind, SecretString};
use crate::domain::{ErrorClass, UpstreamError};
use crate::provider::StreamError;
use crate::provider::openai_wire::unix_now;
use crate::provider::test_support::{self, object};

fn studio() -> Prepared {
    let mut spec = crate::provider::spec(ProviderKind::Gemini);
    spec.model = "gemini-2.5-flash".into();
    spec.api_key = Some(SecretString::new("AIza-test"));
    build_ai_studio(&spec).unwrap()
}

fn ctx() -> ProviderContext {
    let http: Arc<dyn crate::upstream::Transport> = Arc::new(crate::provider::demo::DemoTransport);
    ProviderContext::new(http)
}

fn vertex_spec() -> DeploymentSpec {
    let mut spec = crate::provider::spec(ProviderKind::Vertex);
    spec.model = "gemini-2.5-pro".into();
    spec.region = Some("europe-west4".into());
    spec.gcp_service_account = Some(SecretString::new(
        llmesh_tests::gemini::service_account_json("https://oauth2.googleapis.com/token"),
    ));
    spec
}

fn view<'a>(body: &'a Map<String, Value>, endpoint: Endpoint, stream: bool) -> CallView<'a> {
    test_support::view(endpoint, body, stream, "gemini-2.5-flash")
}

fn sent(body: Value) -> (String, Value) {
    let map = object(&body);
    let call = view(&map, Endpoint::ChatCompletions, false);
    let (uri, body) = test_support::sent(&studio(), &call).unwrap();
    (uri.to_string(), body)
}

fn refused(body: Value) -> String {
    let map = object(&body);
    match test_support::sent(&studio(), &view(&map, Endpoint::ChatCompletions, false)) {
        Err(e) => e.to_string(),
        Ok((_, sent)) => panic!("accepted: {sent}"),
    }
}

#[test]
fn urls_for_both_apis() {
    let p = studio();
    let body = Map::new();
    let req = |p: &Prepared, endpoint, stream| {
        p.dialect
            .request(&CallView {
                endpoint,
                body: &body,
                stream,
                model: "m",
                default_max_tokens: None,
                anthropic_beta: None,
            })
            .map(|r| r.uri().to_string())
    };
    let _ = req(&p, Endpoint::ChatCompletions, false);
    let body_chat = json!({"messages": [{"role": "user", "content": "hi"}]});
    let map = body_chat.as_object().unwrap();
    let uri = |p: &Prepared, stream| {
        p.dialect
            .request(&view(map, Endpoint::ChatCompletions, stream))
            .unwrap()
            .uri()
            .to_string()
    };
    assert_eq!(
        uri(&p, false),
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(
        uri(&p, true),
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    let v = build_vertex(&vertex_spec(), &ctx()).unwrap();
    assert_eq!(
        uri(&v, false),
        "https://europe-west4-aiplatform.googleapis.com/v1/projects/mock-project/locations/europe-west4/publishers/google/models/gemini-2.5-pro:generateContent"
    );
    let mut global = vertex_spec();
    global.region = Some("global".into());
    global.project = Some("my-proj".into());
    let g = build_vertex(&global, &ctx()).unwrap();
    assert_eq!(
        uri(&g, true),
        "https://aiplatform.googleapis.com/v1/projects/my-proj/locations/global/publishers/google/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
    );
    assert!(matches!(v.credential, Credential::Bearer(_)));
    let Credential::Header(name, value) = &p.credential else {
        panic!("AI Studio uses a key header")
    };
    assert_eq!(name, "x-goog-api-key");
    assert!(value.is_sensitive());
    assert!(req(&p, Endpoint::Completions, false).is_err());
}

fn err(built: Result<Prepared, crate::provider::BuildError>) -> String {
    match built {
        Ok(_) => panic!("built"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn builds_refuse_missing_or_odd_settings() {
    let mut spec = crate::provider::spec(ProviderKind::Gemini);
    assert!(err(build_ai_studio(&spec)).contains("apiKey"));
    spec.api_key = Some(SecretString::new("k"));
    spec.model = "models/gemini-2.0-flash".into();
    assert!(build_ai_studio(&spec).is_ok(), "models/ prefix accepted");
    spec.model = "a/b".into();
    assert!(build_ai_studio(&spec).is_err());

    let mut v = vertex_spec();
    v.region = None;
    assert!(err(build_vertex(&v, &ctx())).contains("region is required"));
    v.region = Some("us-central1/../x".into());
    assert!(build_vertex(&v, &ctx()).is_err());
    let mut v = vertex_spec();
    v.gcp_service_account = None;
    assert!(err(build_vertex(&v, &ctx())).contains("service-account"));
    let mut v = vertex_spec();
    v.gcp_service_account = Some(SecretString::new("{}"));
    assert!(build_vertex(&v, &ctx()).is_err());
}

#[test]
fn request_maps_roles_tools_images_and_config() {
    let (_, body) = sent(json!({
        "model": "chat",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "user", "content": [
                {"type": "text", "text": "And this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
            ]},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_b", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_a", "content": "{\"temp\": 18}"},
            {"role": "tool", "tool_call_id": "call_b", "content": "24C"},
            {"role": "user", "content": "Thanks"}
        ],
        "max_completion_tokens": 300,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["END"],
        "n": 2,
        "seed": 7,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
        "tools": [{"type": "function", "function": {"name": "weather", "description": "Get weather",
                   "parameters": {"type": "object", "additionalProperties": false,
                                  "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
                  {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}],
        "tool_choice": {"type": "function", "function": {"name": "weather"}}
    }));
    assert_eq!(
        body["systemInstruction"],
        json!({"parts": [{"text": "Be brief."}, {"text": "Answer in English."}]})
    );
    let contents = body["contents"].as_array().unwrap();
    assert_eq!(contents.len(), 3, "same-role turns merged: {contents:?}");
    assert_eq!(
        contents[0],
        json!({"role": "user", "parts": [
            {"text": "Weather in Paris and Rome?"}, {"text": "And this?"},
            {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}]})
    );
    assert_eq!(
        contents[1],
        json!({"role": "model", "parts": [
            {"text": "Checking."},
            {"functionCall": {"name": "weather", "args": {"city": "Paris"}}},
            {"functionCall": {"name": "weather", "args": {"city": "Rome"}}}]})
    );
    assert_eq!(
        contents[2],
        json!({"role": "user", "parts": [
            {"functionResponse": {"name": "weather", "response": {"temp": 18}}},
            {"functionResponse": {"name": "weather", "response": {"result": "24C"}}},
            {"text": "Thanks"}]})
    );
    assert_eq!(
        body["generationConfig"],
        json!({"stopSequences": ["END"], "candidateCount": 2, "maxOutputTokens": 300,
               "temperature": 0.2, "topP": 0.9, "seed": 7, "presencePenalty": 0.5, "frequencyPenalty": -0.5})
    );
    assert_eq!(
        body["tools"],
        json!([{"functionDeclarations": [
            {"name": "weather", "description": "Get weather",
             "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}},
            {"name": "now"}]}])
    );
    assert_eq!(
        body["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["weather"]}})
    );
}

#[test]
fn tool_choice_response_format_and_reasoning() {
    let base = json!({"messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f"}}]});
    for (choice, mode) in [("auto", "AUTO"), ("none", "NONE"), ("required", "ANY")] {
        let mut req = base.clone();
        req["tool_choice"] = json!(choice);
        assert_eq!(
            sent(req).1["toolConfig"]["functionCallingConfig"],
            json!({ "mode": mode })
        );
    }
    let (_, body) = sent(json!({"messages": [{"role": "user", "content": "hi"}],
        "tool_choice": "none", "response_format": {"type": "json_object"}}));
    assert!(body.get("toolConfig").is_none(), "no tools, no tool config");
    assert_eq!(
        body["generationConfig"],
        json!({"responseMimeType": "application/json"})
    );
    let (_, body) = sent(json!({"messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "p", "strict": true,
            "schema": {"type": "object", "properties": {"n": {"type": "integer"}}, "additionalProperties": false}}},
        "reasoning_effort": "medium"}));
    assert_eq!(
        body["generationConfig"],
        json!({"responseMimeType": "application/json",
               "responseSchema": {"type": "OBJECT", "properties": {"n": {"type": "INTEGER"}}},
               "thinkingConfig": {"includeThoughts": true, "thinkingBudget": 8192}})
    );
}

#[test]
fn requests_gemini_cannot_take_are_refused_with_reasons() {
    let user = json!({"role": "user", "content": "hi"});
    assert!(
        refused(json!({"messages": [{"role": "system", "content": "only system"}]}))
            .contains("at least one user or assistant message")
    );
    assert!(
        refused(json!({"messages": [user, {"role": "tool", "tool_call_id": "x", "content": "1"}]}))
            .contains("answers no tool call")
    );
    let parallel = object(&json!({"messages": [user], "parallel_tool_calls": false}));
    assert_eq!(
        test_support::sent(
            &studio(),
            &view(&parallel, Endpoint::ChatCompletions, false)
        )
        .unwrap_err(),
        TranslateError::Unsupported {
            param: "parallel_tool_calls".into(),
            provider: "gemini"
        },
        "dropUnsupportedParams may drop it"
    );
    assert!(
        refused(json!({"messages": [user], "stop": ["a", "b", "c", "d", "e", "f"]}))
            .contains("stop")
    );
    assert!(
        refused(json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}))
        .contains("data URLs")
    );
    assert!(
        refused(json!({"messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}]}))
        .contains("text and image_url")
    );
    assert!(
        refused(
            json!({"messages": [user, {"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]})
        )
        .contains("not a JSON object")
    );
}

#[test]
fn vertex_takes_image_urls_as_file_data() {
    let v = build_vertex(&vertex_spec(), &ctx()).unwrap();
    let body = json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "gs://bucket/cat.JPG"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/d.webp?x=1"}}]}]});
    let map = body.as_object().unwrap();
    let request = v
        .dialect
        .request(&view(map, Endpoint::ChatCompletions, false))
        .unwrap();
    let sent: Value = serde_json::from_slice(request.body()).unwrap();
    assert_eq!(
        sent["contents"][0]["parts"],
        json!([{"fileData": {"mimeType": "image/jpeg", "fileUri": "gs://bucket/cat.JPG"}},
               {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/d.webp?x=1"}}])
    );
    let body = json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/no-extension"}}]}]});
    let map = object(&body);
    let call = view(&map, Endpoint::ChatCompletions, false);
    assert!(test_support::sent(&v, &call).is_err());
}

fn answer(body: Value) -> Value {
    let request = json!({"messages": [{"role": "user", "content": "hi"}]});
    let map = object(&request);
    let call = view(&map, Endpoint::ChatCompletions, false);
    test_support::answer(&studio(), &call, &body).unwrap()
}

#[test]
fn responses_map_text_thoughts_calls_and_usage() {
    let out = answer(json!({
        "candidates": [{
            "content": {"role": "model", "parts": [
                {"text": "Thinking it over.", "thought": true},
                {"text": "Let me check "}, {"text": "both."},
                {"functionCall": {"name": "weather", "args": {"city": "Paris"}}},
                {"functionCall": {"name": "weather", "args": {"city": "Rome"}}}]},
            "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 20, "thoughtsTokenCount": 30,
                          "cachedContentTokenCount": 40, "totalTokenCount": 150},
        "modelVersion": "gemini-2.5-flash-001", "responseId": "abc"
    }));
    assert_eq!(out["id"], "chatcmpl-abc");
    assert_eq!(out["model"], "gemini-2.5-flash-001");
    let message = test_support::first_message(
        &out,
        "tool_calls",
        "Let me check both.",
        "Thinking it over.",
    );
    assert_eq!(
        message["tool_calls"],
        json!([
            {"id": "call_abc_0", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "call_abc_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}}])
    );
    assert_eq!(
        out["usage"],
        json!({"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150,
               "prompt_tokens_details": {"cached_tokens": 40},
               "completion_tokens_details": {"reasoning_tokens": 30}})
    );
}

#[test]
fn finish_reasons_blocks_and_candidates() {
    for (reason, want) in [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
        ("OTHER", "stop"),
    ] {
        let out = answer(json!({"candidates": [{"finishReason": reason}]}));
        assert_eq!(out["choices"][0]["finish_reason"], want, "{reason}");
        assert_eq!(out["choices"][0]["message"]["content"], "");
    }
    let out = answer(json!({"promptFeedback": {"blockReason": "SAFETY"},
                             "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}}));
    assert_eq!(out["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(out["usage"]["prompt_tokens"], 5);
    let out = answer(json!({"candidates": [
        {"content": {"parts": [{"text": "a"}]}, "finishReason": "STOP"},
        {"content": {"parts": [{"text": "b"}]}, "finishReason": "MAX_TOKENS", "index": 1}]}));
    assert_eq!(out["choices"][1]["index"], 1);
    assert_eq!(out["choices"][1]["message"]["content"], "b");
    assert_eq!(out["choices"][1]["finish_reason"], "length");

    let request = json!({"messages": [{"role": "user", "content": "hi"}]});
    let map = request.as_object().unwrap();
    let call = view(map, Endpoint::ChatCompletions, false);
    for bad in [&b"{\"candidates\": [{\"content\": "[..], b"{}", b"[]"] {
        assert!(
            studio()
                .dialect
                .response(&call, Bytes::from_static(bad))
                .is_err()
        );
    }
}

fn stream_of(chunks: &[&[u8]], body: Value) -> (Vec<Value>, Result<(), StreamError>) {
    let map = body.as_object().unwrap().clone();
    let mut translator = studio()
        .dialect
        .stream(&view(&map, Endpoint::ChatCompletions, true));
    let mut out = Vec::new();
    let mut result = Ok(());
    for chunk in chunks {
        match translator.feed(Bytes::copy_from_slice(chunk)) {
            Ok(bytes) => out.extend(bytes),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if result.is_ok() {
        match translator.finish() {
            Ok(bytes) => out.extend(bytes),
            Err(e) => result = Err(e),
        }
    }
    let out: Vec<u8> = out.concat();
    let events = test_support::events(&out);
    (events, result)
}

fn sse(chunks: &[Value]) -> Vec<u8> {
    chunks
        .iter()
        .flat_map(|c| format!("data: {c}\r\n\r\n").into_bytes())
        .collect()
}

#[test]
fn streams_translate_text_calls_finish_and_usage_split_anywhere() {
    let upstream = sse(&[
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hm.", "thought": true}]}, "index": 0}],
               "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}, "responseId": "r1", "modelVersion": "gemini-2.5-flash"}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Checking "}]}, "index": 0}], "responseId": "r1"}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"functionCall": {"name": "a", "args": {"x": 1}}}]}, "index": 0}], "responseId": "r1"}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"functionCall": {"name": "b", "args": {}}}]},
               "finishReason": "STOP", "index": 0}],
               "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 6, "thoughtsTokenCount": 2, "totalTokenCount": 17},
               "responseId": "r1"}),
    ]);
    let request = json!({"messages": [{"role": "user", "content": "hi"}], "stream_options": {"include_usage": true}});
    // Byte by byte: events must still come out whole and in order.
    let pieces: Vec<&[u8]> = upstream.chunks(1).collect();
    let (events, result) = stream_of(&pieces, request.clone());
    result.unwrap();
    let whole = stream_of(&[&upstream], request).0;
    assert_eq!(events.len(), whole.len());
    assert_eq!(
        events[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert_eq!(events[0]["id"], "chatcmpl-r1");
    assert_eq!(
        events[1]["choices"][0]["delta"],
        json!({"reasoning_content": "Hm."})
    );
    assert_eq!(
        events[2]["choices"][0]["delta"],
        json!({"content": "Checking "})
    );
    assert_eq!(
        events[3]["choices"][0]["delta"]["tool_calls"],
        json!([{"index": 0, "id": "call_r1_0", "type": "function", "function": {"name": "a", "arguments": "{\"x\":1}"}}])
    );
    assert_eq!(
        events[4]["choices"][0]["delta"]["tool_calls"][0]["index"],
        1
    );
    assert_eq!(
        events[4]["choices"][0]["delta"]["tool_calls"][0]["id"],
        "call_r1_1"
    );
    assert_eq!(events[5]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(events[6]["choices"], json!([]));
    assert_eq!(events[6]["usage"]["completion_tokens"], 8);
    assert_eq!(
        events[6]["usage"]["completion_tokens_details"]["reasoning_tokens"],
        2
    );
    assert_eq!(events[7], "[DONE]");
    assert!(
        events
            .iter()
            .all(|e| e == "[DONE]" || e["id"] == "chatcmpl-r1")
    );
}

#[test]
fn broken_streams_are_errors_never_complete_answers() {
    let request = json!({"messages": [{"role": "user", "content": "hi"}]});
    let open = sse(&[json!({"candidates": [{"content": {"parts": [{"text": "Hi"}]}}]})]);
    let (events, result) = stream_of(&[&open], request.clone());
    assert!(result.unwrap_err().message.contains("finishReason"));
    assert!(!events.contains(&json!("[DONE]")));

    let garbled = b"data: {\"candidates\": [{\"content\"\r\n\r\n";
    assert_eq!(
        stream_of(&[garbled], request.clone()).1.unwrap_err().code,
        "upstream_malformed_stream"
    );

    let error = sse(&[
        json!({"candidates": [{"content": {"parts": [{"text": "Hi"}]}}]}),
        json!({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}),
    ]);
    let err = stream_of(&[&error], request.clone()).1.unwrap_err();
    assert_eq!(err.code, "upstream_stream_error");
    assert!(err.message.contains("UNAVAILABLE"), "{}", err.message);

    let blocked = sse(&[json!({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}})]);
    let (events, result) = stream_of(&[&blocked], request);
    result.unwrap();
    assert_eq!(events[1]["choices"][0]["finish_reason"], "content_filter");
}

#[test]
fn streams_keep_candidates_apart() {
    let upstream = sse(&[
        json!({"candidates": [{"content": {"parts": [{"text": "a"}]}, "index": 0}]}),
        json!({"candidates": [{"content": {"parts": [{"text": "b"}]}, "index": 1, "finishReason": "STOP"}]}),
        json!({"candidates": [{"content": {"parts": [{"text": "c"}]}, "finishReason": "MAX_TOKENS", "index": 0}]}),
    ]);
    let (events, result) = stream_of(&[&upstream], json!({"messages": [], "n": 2}));
    result.unwrap();
    let text_of = |i: u64| -> String {
        events
            .iter()
            .filter(|e| e["choices"][0]["index"] == i)
            .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
            .collect()
    };
    assert_eq!((text_of(0), text_of(1)), ("ac".to_owned(), "b".to_owned()));
}

fn error_of(status: u16, body: &str) -> UpstreamError {
    studio()
        .dialect
        .error(StatusCode::from_u16(status).unwrap(), body.as_bytes())
}

#[test]
fn google_errors_are_read_and_classified() {
    let e = error_of(
        400,
        r#"{"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}}"#,
    );
    assert_eq!((e.class, e.status), (ErrorClass::Auth, Some(401)));
    let e = error_of(
        400,
        r#"{"error": {"code": 400, "message": "The input token count (1048577) exceeds the maximum number of tokens allowed (1048576).", "status": "INVALID_ARGUMENT"}}"#,
    );
    assert_eq!((e.class, e.status), (ErrorClass::ContextWindow, Some(400)));
    let e = error_of(
        429,
        r#"{"error": {"code": 429, "message": "Quota exceeded.", "status": "RESOURCE_EXHAUSTED",
        "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "34s"}]}}"#,
    );
    assert_eq!((e.class, e.status), (ErrorClass::RateLimited, Some(429)));
    assert_eq!(
        e.message,
        "Quota exceeded. (RESOURCE_EXHAUSTED) Retry after 34s."
    );
    assert_eq!(e.retry_after, Some(std::time::Duration::from_secs(34)));
    // RetryInfo among Google's other details; protobuf Duration forms, capped at an hour.
    let delay = |retry_delay: &str| {
        let body = json!({"error": {"code": 429, "message": "Quota exceeded.", "status": "RESOURCE_EXHAUSTED",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
                {"@type": "type.googleapis.com/google.rpc.Help", "links": []},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}]}});
        error_of(429, &body.to_string()).retry_after
    };
    let ms = std::time::Duration::from_millis;
    assert_eq!(delay("0.5s"), Some(ms(500)));
    assert_eq!(
        delay("12.000340s"),
        Some(std::time::Duration::new(12, 340_000))
    );
    assert_eq!(delay("99999999999999999999999s"), Some(ms(3_600_000)));
    for junk in ["-3s", "34", "s", "1.2.3s", "1.1234567891s", "soon"] {
        assert_eq!(delay(junk), None, "{junk}");
    }
    // A retryDelay outside a RetryInfo detail is not one.
    let e = error_of(
        429,
        r#"{"error": {"code": 429, "message": "m", "details": [{"@type": "x.Other", "retryDelay": "9s"}]}}"#,
    );
    assert_eq!(e.retry_after, None);
    for (code, class) in [
        (401, ErrorClass::Auth),
        (403, ErrorClass::Auth),
        (404, ErrorClass::Invalid),
        (500, ErrorClass::Server),
        (503, ErrorClass::Server),
    ] {
        let e = error_of(
            code,
            &format!(r#"{{"error": {{"code": {code}, "message": "m"}}}}"#),
        );
        assert_eq!((e.class, e.status), (class, Some(code)));
    }
    let e = error_of(
        404,
        "<!DOCTYPE html><title>Error 404 (Not Found)!!1</title>",
    );
    assert_eq!(e.status, Some(404));
    assert!(e.message.starts_with("Gemini answered 404"));
}

#[test]
fn embeddings_use_the_right_method_and_come_back_as_a_list() {
    let p = studio();
    let one = json!({"input": "hello", "dimensions": 4});
    let map = one.as_object().unwrap();
    let call = view(map, Endpoint::Embeddings, false);
    let request = p.dialect.request(&call).unwrap();
    assert!(
        request
            .uri()
            .path()
            .ends_with("gemini-2.5-flash:embedContent")
    );
    assert_eq!(
        serde_json::from_slice::<Value>(request.body()).unwrap(),
        json!({"content": {"parts": [{"text": "hello"}]}, "outputDimensionality": 4})
    );
    let out = p
        .dialect
        .response(
            &call,
            Bytes::from(r#"{"embedding": {"values": [0.5, -0.5]}}"#),
        )
        .unwrap();
    let out: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(out["object"], "list");
    assert_eq!(
        out["data"][0],
        json!({"object": "embedding", "index": 0, "embedding": [0.5, -0.5]})
    );

    let many = json!({"input": ["a", "b"], "encoding_format": "base64"});
    let map = many.as_object().unwrap();
    let call = view(map, Endpoint::Embeddings, false);
    let request = p.dialect.request(&call).unwrap();
    assert!(request.uri().path().ends_with(":batchEmbedContents"));
    let sent: Value = serde_json::from_slice(request.body()).unwrap();
    assert_eq!(sent["requests"][1]["model"], "models/gemini-2.5-flash");
    let out = p
        .dialect
        .response(
            &call,
            Bytes::from(r#"{"embeddings": [{"values": [1.0]}, {"values": [0.0]}]}"#),
        )
        .unwrap();
    let out: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(
        out["data"][0]["embedding"], "AACAPw==",
        "base64 of little-endian 1.0f32"
    );

    let v = build_vertex(&vertex_spec(), &ctx()).unwrap();
    let request = v.dialect.request(&call).unwrap();
    assert!(request.uri().path().ends_with(":predict"));
    assert_eq!(
        serde_json::from_slice::<Value>(request.body()).unwrap(),
        json!({"instances": [{"content": "a"}, {"content": "b"}]})
    );
    let out = v
        .dialect
        .response(
            &call,
            Bytes::from(
                r#"{"predictions": [
            {"embeddings": {"values": [1.0], "statistics": {"token_count": 3, "truncated": false}}},
            {"embeddings": {"values": [1.0], "statistics": {"tokenCount": 4}}}]}"#,
            ),
        )
        .unwrap();
    let out: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(out["usage"], json!({"prompt_tokens": 7, "total_tokens": 7}));

    let tokens = json!({"input": [[1, 2]]});
    let map = object(&tokens);
    assert!(test_support::sent(&p, &view(&map, Endpoint::Embeddings, false)).is_err());
    let mut gemini_embedding = vertex_spec();
    gemini_embedding.model = "gemini-embedding-001".into();
    let g = build_vertex(&gemini_embedding, &ctx()).unwrap();
    let call = CallView {
        model: "gemini-embedding-001",
        ..call
    };
    // One input per request: the call is sent in pieces (see embed.rs).
    assert!(g.dialect.request(&call).is_err());
    assert_eq!(g.dialect.split(&call).unwrap().unwrap().len(), 2);
}

#[test]
fn completion_ids_are_made_when_google_sends_none() {
    assert!(response::completion_id(None).starts_with("chatcmpl-gemini-"));
    assert_eq!(response::call_id(Some("given"), Some("r"), 0, 3), "given");
    assert_eq!(response::call_id(None, None, 0, 3), "call_3");
    assert_eq!(response::call_id(None, Some("r"), 2, 0), "call_r_2_0");
    let _ = unix_now();
}

#[test]
fn claude_on_vertex_speaks_anthropics_api_at_raw_predict() {
    let mut spec = vertex_spec();
    spec.model = "claude-sonnet-4-5@20250929".into();
    let claude = build_vertex(&spec, &ctx()).unwrap();
    let base = "https://europe-west4-aiplatform.googleapis.com/v1/projects/mock-project/locations/europe-west4/publishers/anthropic/models/claude-sonnet-4-5@20250929";
    assert!(claude.dialect.native(Endpoint::Messages));
    // A Messages call passes through, the model in the URL and the version in the body.
    let messages = object(&json!({"model": "claude", "max_tokens": 10, "stream": true,
        "messages": [{"role": "user", "content": "hi"}], "thinking": {"type": "adaptive"}}));
    let call = test_support::view(
        Endpoint::Messages,
        &messages,
        true,
        "claude-sonnet-4-5@20250929",
    );
    let (uri, body) = test_support::sent(&claude, &call).unwrap();
    assert_eq!(uri.to_string(), format!("{base}:streamRawPredict"));
    assert_eq!(
        body,
        json!({"max_tokens": 10, "stream": true, "messages": [{"role": "user", "content": "hi"}],
               "thinking": {"type": "adaptive"}, "anthropic_version": "vertex-2023-10-16"})
    );
    // A chat call is translated as for Anthropic, under the same rules.
    let chat = object(&json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}]}));
    let call = test_support::view(
        Endpoint::ChatCompletions,
        &chat,
        false,
        "claude-sonnet-4-5@20250929",
    );
    let (uri, body) = test_support::sent(&claude, &call).unwrap();
    assert_eq!(uri.to_string(), format!("{base}:rawPredict"));
    assert_eq!(body["anthropic_version"], "vertex-2023-10-16");
    assert!(body.get("model").is_none(), "{body}");
    assert_eq!(body["messages"][0]["content"][0]["text"], "hi");
    let request = claude.dialect.request(&call).unwrap();
    assert!(request.headers().get("anthropic-version").is_none());
}

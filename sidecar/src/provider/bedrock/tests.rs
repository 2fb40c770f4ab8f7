//! Unit tests of the Bedrock translation: requests, responses, the stream state machine
//! and errors. The wire exchange with a mock Bedrock is tested in
//! `sidecar/tests/provider_bedrock.rs`.

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value, json};

use super::eventstream::tests::encode;
use super::*;
use crate::config::snapshot::{AwsCredentials, ProviderKind, SecretString};
use crate::domain::ErrorClass;
use crate::provider::StreamError;

fn spec() -> DeploymentSpec {
    let mut spec = crate::provider::spec(ProviderKind::Bedrock);
    spec.model = "anthropic.claude-3-5-haiku-20241022-v1:0".into();
    spec.region = Some("eu-west-1".into());
    spec.aws = Some(AwsCredentials::new("AKIAEXAMPLE", "secret"));
    spec
}

fn dialect() -> Prepared {
    build(&spec(), &offline()).unwrap()
}

use crate::provider::test_support::{self, object, offline, view};

fn chat_body(body: Value) -> (http::Uri, Value) {
    let map = object(&body);
    let model = "anthropic.claude-3-5-haiku-20241022-v1:0";
    let call = view(Endpoint::ChatCompletions, &map, false, model);
    test_support::sent(&dialect(), &call).unwrap()
}

fn refused(endpoint: Endpoint, body: Value, model: &str) -> TranslateError {
    let map = object(&body);
    test_support::sent(&dialect(), &view(endpoint, &map, false, model)).unwrap_err()
}

#[test]
fn build_needs_a_region_and_credentials() {
    let mut s = spec();
    s.region = None;
    assert!(
        build(&s, &offline())
            .err()
            .unwrap()
            .to_string()
            .contains("region")
    );
    let mut s = spec();
    s.region = Some("EU west".into());
    assert!(build(&s, &offline()).is_err());
    let mut s = spec();
    s.aws = None;
    assert!(
        build(&s, &offline())
            .err()
            .unwrap()
            .to_string()
            .contains("credentials")
    );
    s.api_key = Some(SecretString::new("ABSK-key"));
    assert!(matches!(
        build(&s, &offline()).unwrap().credential,
        Credential::Header(..)
    ));
    assert!(matches!(dialect().credential, Credential::SigV4(..)));
}

#[tokio::test]
async fn workload_identity_signs_with_the_pods_role_instead_of_a_secret() {
    let mut s = spec();
    s.aws = None;
    s.workload_identity = Some(crate::config::snapshot::WorkloadIdentity::AwsWebIdentity);
    // This pod has no IRSA variables: the deployment builds, its calls say why not.
    let Credential::SigV4(_, keys) = build(&s, &offline()).unwrap().credential else {
        panic!("not SigV4")
    };
    let err = keys.lease().await.unwrap_err().to_string();
    assert!(err.contains("AWS_ROLE_ARN"), "{err}");
    s.aws = Some(AwsCredentials::new("AKIAEXAMPLE", "secret"));
    assert!(build(&s, &offline()).is_err(), "a key and an identity");
    s.aws = None;
    s.workload_identity = Some(crate::config::snapshot::WorkloadIdentity::GcpMetadata);
    assert!(build(&s, &offline()).is_err());
}

#[test]
fn chat_maps_to_converse() {
    let (uri, sent) = chat_body(json!({
        "model": "chat",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "English only."}]},
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "user", "content": [{"type": "text", "text": "Please."},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}]},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "t2", "type": "function", "function": {"name": "weather", "arguments": ""}}
            ]},
            {"role": "tool", "tool_call_id": "t1", "content": "18C"},
            {"role": "tool", "tool_call_id": "t2", "content": [{"type": "text", "text": "24C"}]},
            {"role": "user", "content": "Thanks"}
        ],
        "max_completion_tokens": 300,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": "END",
        "user": "u-1",
        "tools": [{"type": "function", "function": {"name": "weather", "description": "Get weather",
                   "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "tool_choice": "required"
    }));
    assert_eq!(
        uri.to_string(),
        "https://bedrock-runtime.eu-west-1.amazonaws.com/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"
    );
    assert_eq!(
        sent["system"],
        json!([{"text": "Be brief."}, {"text": "English only."}])
    );
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "user", "content": [
                {"text": "Weather in Paris and Rome?"},
                {"text": "Please."},
                {"image": {"format": "jpeg", "source": {"bytes": "/9j/4AAQ"}}}
            ]},
            {"role": "assistant", "content": [
                {"text": "Checking."},
                {"toolUse": {"toolUseId": "t1", "name": "weather", "input": {"city": "Paris"}}},
                {"toolUse": {"toolUseId": "t2", "name": "weather", "input": {}}}
            ]},
            {"role": "user", "content": [
                {"toolResult": {"toolUseId": "t1", "content": [{"text": "18C"}]}},
                {"toolResult": {"toolUseId": "t2", "content": [{"text": "24C"}]}},
                {"text": "Thanks"}
            ]}
        ])
    );
    assert_eq!(
        sent["inferenceConfig"],
        json!({"maxTokens": 300, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"]})
    );
    assert_eq!(
        sent["toolConfig"],
        json!({"tools": [{"toolSpec": {"name": "weather", "description": "Get weather",
            "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}}],
            "toolChoice": {"any": {}}})
    );
    assert_eq!(sent["requestMetadata"], json!({"user": "u-1"}));
}

#[test]
fn tool_choice_variants() {
    let tools =
        json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);
    let user = json!([{"role": "user", "content": "hi"}]);
    let choice =
        |c: Value| chat_body(json!({"messages": user, "tools": tools, "tool_choice": c})).1;
    assert_eq!(
        choice(json!("auto"))["toolConfig"]["toolChoice"],
        json!({"auto": {}})
    );
    assert_eq!(
        choice(json!({"type": "function", "function": {"name": "f"}}))["toolConfig"]["toolChoice"],
        json!({"tool": {"name": "f"}})
    );
    assert!(
        choice(json!("none")).get("toolConfig").is_none(),
        "none drops the tools"
    );
    // With tool blocks in the conversation Bedrock needs a toolConfig, even for none, and
    // even when the client did not resend the tools.
    let history = json!([
        {"role": "user", "content": "hi"},
        {"role": "assistant", "tool_calls": [{"id": "a", "type": "function", "function": {"name": "g", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "a", "content": "ok"}
    ]);
    let (_, sent) = chat_body(json!({"messages": history, "tools": tools, "tool_choice": "none"}));
    assert!(sent["toolConfig"].get("toolChoice").is_none());
    let (_, sent) = chat_body(json!({"messages": history}));
    assert_eq!(
        sent["toolConfig"]["tools"],
        json!([{"toolSpec": {"name": "g", "inputSchema": {"json": {"type": "object", "properties": {}}}}}])
    );
}

#[test]
fn cache_control_becomes_cache_points_after_the_marked_blocks() {
    let cache = json!({"type": "ephemeral"});
    let (_, sent) = chat_body(json!({
        "messages": [
            {"role": "system", "content": [
                {"type": "text", "text": "Rules.", "cache_control": cache},
                {"type": "text", "text": "Today is Monday."}
            ]},
            {"role": "developer", "content": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]},
            {"role": "user", "content": [
                {"type": "text", "text": "Long document", "cache_control": cache},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}, "cache_control": cache},
                {"type": "text", "text": " ", "cache_control": cache},
                {"type": "text", "text": "Summarise."}
            ]},
            {"role": "assistant", "content": [{"type": "text", "text": "Done.", "cache_control": cache}],
             "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]},
            {"role": "user", "content": [{"type": "text", "text": "And?", "cache_control": cache}]},
            {"role": "tool", "tool_call_id": "t1", "content": [{"type": "text", "text": "found", "cache_control": cache}]}
        ],
        "tools": [
            {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}},
            {"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}, "cache_control": cache}
        ]
    }));
    assert_eq!(
        sent["system"],
        json!([
            {"text": "Rules."},
            {"cachePoint": {"type": "default"}},
            {"text": "Today is Monday."},
            {"text": "Be brief."},
            {"cachePoint": {"type": "default"}}
        ])
    );
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "user", "content": [
                {"text": "Long document"},
                {"cachePoint": {"type": "default"}},
                {"image": {"format": "png", "source": {"bytes": "iVBO"}}},
                {"cachePoint": {"type": "default"}},
                {"text": "Summarise."}
            ]},
            {"role": "assistant", "content": [
                {"text": "Done."},
                {"cachePoint": {"type": "default"}},
                {"toolUse": {"toolUseId": "t1", "name": "lookup", "input": {}}}
            ]},
            {"role": "user", "content": [
                {"toolResult": {"toolUseId": "t1", "content": [{"text": "found"}]}},
                {"cachePoint": {"type": "default"}},
                {"text": "And?"},
                {"cachePoint": {"type": "default"}}
            ]}
        ])
    );
    assert_eq!(
        sent["toolConfig"],
        json!({"tools": [
            {"toolSpec": {"name": "lookup", "inputSchema": {"json": {"type": "object"}}}},
            {"toolSpec": {"name": "search", "inputSchema": {"json": {"type": "object"}}}},
            {"cachePoint": {"type": "default"}}
        ]})
    );
    // Unmarked requests carry no cache points, and a mark with nothing before it in its
    // message marks nothing.
    let (_, plain) = chat_body(json!({"messages": [
        {"role": "system", "content": [{"type": "text", "text": "", "cache_control": cache}]},
        {"role": "user", "content": [{"type": "text", "text": "", "cache_control": cache}, {"type": "text", "text": "hi"}]}
    ]}));
    assert!(plain.get("system").is_none());
    assert_eq!(
        plain["messages"],
        json!([{"role": "user", "content": [{"text": "hi"}]}])
    );
}

#[test]
fn refusals_name_the_parameter() {
    let model = "anthropic.claude-3-5-haiku-20241022-v1:0";
    let https = json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]});
    assert!(matches!(refused(Endpoint::ChatCompletions, https, model),
        TranslateError::Invalid { param: "messages", message } if message.contains("data URL")));
    let bmp = json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}}]}]});
    assert!(
        refused(Endpoint::ChatCompletions, bmp, model)
            .to_string()
            .contains("image/bmp")
    );
    let n = json!({"messages": [{"role": "user", "content": "x"}], "n": 2});
    assert!(matches!(
        refused(Endpoint::ChatCompletions, n, model),
        TranslateError::UnsupportedValue { param: "n", .. }
    ));
    let legacy = json!({"prompt": "x"});
    assert!(matches!(
        refused(Endpoint::Completions, legacy, model),
        TranslateError::Invalid { param: "model", .. }
    ));
    let supported = dialect()
        .dialect
        .supported_params(Endpoint::ChatCompletions)
        .unwrap();
    assert!(!supported.contains(&"seed") && !supported.contains(&"logprobs"));
}

#[test]
fn streams_go_to_converse_stream() {
    let map = json!({"messages": [{"role": "user", "content": "x"}]})
        .as_object()
        .unwrap()
        .clone();
    let arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-7-sonnet-20250219-v1:0";
    let request = dialect()
        .dialect
        .request(&view(Endpoint::ChatCompletions, &map, true, arn))
        .unwrap();
    assert_eq!(
        request.uri().path(),
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-7-sonnet-20250219-v1%3A0/converse-stream"
    );
    assert_eq!(
        request.headers()["accept"],
        "application/vnd.amazon.eventstream"
    );
}

fn answer(body: Value) -> Value {
    let map = Map::new();
    let call = view(Endpoint::ChatCompletions, &map, false, "m-1");
    test_support::answer(&dialect(), &call, &body).unwrap()
}

#[test]
fn converse_responses_become_completions() {
    let v = answer(json!({
        "output": {"message": {"role": "assistant", "content": [
            {"reasoningContent": {"reasoningText": {"text": "think", "signature": "sig"}}},
            {"text": "Let me check."},
            {"toolUse": {"toolUseId": "tooluse_1", "name": "weather", "input": {"city": "Paris"}}}
        ]}},
        "stopReason": "tool_use",
        "usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 45,
                  "cacheReadInputTokens": 20, "cacheWriteInputTokens": 10},
        "metrics": {"latencyMs": 100}
    }));
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["model"], "m-1");
    let m = test_support::first_message(&v, "tool_calls", "Let me check.", "think");
    assert_eq!(m["tool_calls"][0]["id"], "tooluse_1");
    assert_eq!(
        m["tool_calls"][0]["function"]["arguments"],
        r#"{"city":"Paris"}"#
    );
    assert_eq!(v["usage"]["prompt_tokens"], 40);
    assert_eq!(v["usage"]["completion_tokens"], 5);
    assert_eq!(v["usage"]["total_tokens"], 45);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 20);
    assert_eq!(
        v["usage"]["prompt_tokens_details"]["cache_creation_tokens"],
        10
    );
    for (stop, finish) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
    ] {
        let v = answer(
            json!({"output": {"message": {"role": "assistant", "content": [{"text": "x"}]}},
            "stopReason": stop, "usage": {"inputTokens": 1, "outputTokens": 1}}),
        );
        assert_eq!(v["choices"][0]["finish_reason"], finish, "{stop}");
    }
    let map = Map::new();
    assert!(
        dialect()
            .dialect
            .response(
                &view(Endpoint::ChatCompletions, &map, false, "m"),
                Bytes::from_static(b"{\"output\":")
            )
            .is_err()
    );
}

fn frame(kind: &str, payload: Value) -> Vec<u8> {
    encode(
        &[
            (":event-type", 7, kind.as_bytes()),
            (":content-type", 7, b"application/json"),
            (":message-type", 7, b"event"),
        ],
        payload.to_string().as_bytes(),
    )
}

fn run_stream(
    frames: &[Vec<u8>],
    include_usage: bool,
    chunk: usize,
) -> Result<Vec<Value>, StreamError> {
    let body =
        json!({"messages": [], "stream": true, "stream_options": {"include_usage": include_usage}});
    let map = object(&body);
    let translator = dialect()
        .dialect
        .stream(&view(Endpoint::ChatCompletions, &map, true, "m-1"));
    test_support::run_stream(translator, &frames.concat(), chunk)
}

fn tool_stream() -> Vec<Vec<u8>> {
    vec![
        frame("messageStart", json!({"role": "assistant", "p": "abc"})),
        frame(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "Checking "}, "p": "ab"}),
        ),
        frame("contentBlockStop", json!({"contentBlockIndex": 0})),
        frame(
            "contentBlockStart",
            json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tu_1", "name": "weather"}}}),
        ),
        frame(
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"city\":"}}}),
        ),
        frame(
            "contentBlockStart",
            json!({"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "tu_2", "name": "time"}}}),
        ),
        frame(
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "\"Paris\"}"}}}),
        ),
        frame(
            "contentBlockDelta",
            json!({"contentBlockIndex": 2, "delta": {"toolUse": {"input": "{}"}}}),
        ),
        frame("contentBlockStop", json!({"contentBlockIndex": 1})),
        frame("someFutureEvent", json!({"x": 1})),
        frame("messageStop", json!({"stopReason": "tool_use"})),
        frame(
            "metadata",
            json!({"usage": {"inputTokens": 7, "outputTokens": 3, "totalTokens": 40,
                   "cacheReadInputTokens": 20, "cacheWriteInputTokens": 10}, "metrics": {"latencyMs": 9}}),
        ),
    ]
}

#[test]
fn streamed_tool_calls_arrive_whole_with_their_indexes() {
    for chunk in [1, 5, 64, 100_000] {
        let events = run_stream(&tool_stream(), true, chunk).unwrap();
        assert_eq!(events.last().unwrap(), "[DONE]", "chunks of {chunk}");
        let chunks = &events[..events.len() - 1];
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert!(
            chunks
                .iter()
                .all(|c| c["id"] == chunks[0]["id"] && c["model"] == "m-1")
        );
        let calls = test_support::streamed_tool_calls(chunks);
        assert_eq!(
            calls,
            vec![
                (
                    "tu_1".into(),
                    "weather".into(),
                    r#"{"city":"Paris"}"#.into()
                ),
                ("tu_2".into(), "time".into(), "{}".into()),
            ]
        );
        assert_eq!(test_support::streamed_text(chunks), "Checking ");
        let finish = chunks
            .iter()
            .find_map(|c| c["choices"][0]["finish_reason"].as_str());
        assert_eq!(finish, Some("tool_calls"));
        let usage = &chunks.last().unwrap()["usage"];
        assert_eq!(
            (
                usage["prompt_tokens"].as_u64(),
                usage["completion_tokens"].as_u64()
            ),
            (Some(37), Some(3)),
            "input + cache reads + cache writes"
        );
        assert_eq!(
            usage["prompt_tokens_details"],
            json!({"cached_tokens": 20, "cache_creation_tokens": 10})
        );
    }
}

#[test]
fn stream_failures_are_errors_never_skipped() {
    // An exception before any content: nothing has been written, so the attempt can
    // still fall back.
    let exception = encode(
        &[
            (":exception-type", 7, b"throttlingException"),
            (":content-type", 7, b"application/json"),
            (":message-type", 7, b"exception"),
        ],
        br#"{"message":"Too many requests"}"#,
    );
    let map = json!({"messages": []}).as_object().unwrap().clone();
    let mut t = dialect()
        .dialect
        .stream(&view(Endpoint::ChatCompletions, &map, true, "m"));
    assert_eq!(
        t.feed(Bytes::from(frame(
            "messageStart",
            json!({"role": "assistant"})
        )))
        .unwrap(),
        None
    );
    let err = t.feed(Bytes::from(exception)).unwrap_err();
    assert_eq!(err.code, "upstream_stream_error");
    assert!(err.message.contains("throttlingException") && err.message.contains("Too many"));

    let mut bad = tool_stream();
    let last = bad[3].len() - 1;
    bad[3][last] ^= 0xff;
    let err = run_stream(&bad, false, 7).unwrap_err();
    assert_eq!(err.code, "upstream_malformed_stream");
    assert!(err.message.contains("CRC"), "{}", err.message);

    let mut cut = tool_stream();
    cut.truncate(5);
    assert!(
        run_stream(&cut, false, 3)
            .unwrap_err()
            .message
            .contains("messageStop")
    );
    let mut half = tool_stream();
    half[11].truncate(20);
    assert!(
        run_stream(&half, false, 64)
            .unwrap_err()
            .message
            .contains("ended inside a message")
    );
    let garbage = vec![
        frame("messageStart", json!({})),
        b"{\"not\":\"eventstream\"}".to_vec(),
    ];
    assert!(run_stream(&garbage, false, 64).is_err());
    let bad_json = vec![
        frame("messageStart", json!({})),
        encode(
            &[(":event-type", 7, b"contentBlockDelta")],
            b"{\"contentBlockIndex\":",
        ),
    ];
    assert!(
        run_stream(&bad_json, false, 64)
            .unwrap_err()
            .message
            .contains("contentBlockDelta payload")
    );
}

#[test]
fn errors_keep_their_status_and_are_classified() {
    for (status, class) in [
        (400, ErrorClass::Invalid),
        (403, ErrorClass::Auth),
        (404, ErrorClass::Invalid),
        (408, ErrorClass::Timeout),
        (429, ErrorClass::RateLimited),
        (500, ErrorClass::Server),
        (503, ErrorClass::Server),
    ] {
        let e = response::error(
            StatusCode::from_u16(status).unwrap(),
            br#"{"message":"nope"}"#,
        );
        assert_eq!(
            (e.class, e.status, e.message.as_str()),
            (class, Some(status), "nope")
        );
    }
    let e = response::error(StatusCode::from_u16(424).unwrap(), b"{}");
    assert_eq!((e.class, e.status), (ErrorClass::Server, Some(502)));
    let e = response::error(StatusCode::FORBIDDEN, b"<html>");
    assert!(e.message.contains("Bedrock answered 403"));
    let e = response::error(
        StatusCode::BAD_REQUEST,
        br#"{"message":"Input is too long for requested model."}"#,
    );
    assert_eq!(e.class, ErrorClass::ContextWindow);
}

#[test]
fn embeddings_for_titan_and_cohere() {
    let titan = "amazon.titan-embed-text-v2:0";
    let map = json!({"input": "hello", "dimensions": 256})
        .as_object()
        .unwrap()
        .clone();
    let req = dialect()
        .dialect
        .request(&view(Endpoint::Embeddings, &map, false, titan))
        .unwrap();
    assert!(
        req.uri()
            .path()
            .ends_with("/model/amazon.titan-embed-text-v2%3A0/invoke")
    );
    let sent: Value = serde_json::from_slice(req.body()).unwrap();
    assert_eq!(
        sent,
        json!({"inputText": "hello", "dimensions": 256, "normalize": true})
    );
    assert!(matches!(
        refused(Endpoint::Embeddings, json!({"input": ["a", "b"]}), titan),
        TranslateError::Invalid { param: "input", .. }
    ));
    assert!(
        refused(
            Endpoint::Embeddings,
            json!({"input": "a"}),
            "meta.llama3-8b-instruct-v1:0"
        )
        .to_string()
        .contains("not a Bedrock embedding model")
    );

    let map = json!({"input": ["a", "b"], "encoding_format": "base64"})
        .as_object()
        .unwrap()
        .clone();
    let cohere = "cohere.embed-english-v3";
    let req = dialect()
        .dialect
        .request(&view(Endpoint::Embeddings, &map, false, cohere))
        .unwrap();
    let sent: Value = serde_json::from_slice(req.body()).unwrap();
    assert_eq!(
        sent,
        json!({"texts": ["a", "b"], "input_type": "search_document", "embedding_types": ["float"]})
    );
    for body in [
        json!({"embeddings": [[1.0, 0.0], [0.0, 1.0]], "response_type": "embeddings_floats"}),
        json!({"embeddings": {"float": [[1.0, 0.0], [0.0, 1.0]]}, "response_type": "embeddings_by_type"}),
    ] {
        let out = dialect()
            .dialect
            .response(
                &view(Endpoint::Embeddings, &map, false, cohere),
                Bytes::from(body.to_string()),
            )
            .unwrap();
        let v: Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(v["data"][1]["index"], 1);
        // [0.0, 1.0] as little-endian f32s.
        assert_eq!(v["data"][1]["embedding"], "AAAAAAAAgD8=");
    }
}

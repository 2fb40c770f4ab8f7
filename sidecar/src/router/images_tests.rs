//! Tests of [`super`]: which images are fetched for which provider, the rewritten
//! bodies, once per call, the limits (in paused time) and the client's errors.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::*;
use crate::config::snapshot::{
    DeploymentSpec, FORMAT, ImageFetchSpec, ModelSpec, ProviderKind, SecretString, Snapshot,
};
use crate::provider::demo::DemoTransport;
use crate::provider::test_support::{object, view};
use crate::router::routes::{Routes, RoutesBuilder};
use crate::upstream::fetch::tests::{Answer, JPEG, PNG, Scripted, Step};

const A: &str = "https://images.example.com/a.png";
const B: &str = "https://images.example.com/b.jpg";

fn deployment(provider: ProviderKind, model: &str) -> DeploymentSpec {
    let mut d = DeploymentSpec::new("d", provider, model);
    d.api_key = Some(SecretString::new("key"));
    match provider {
        ProviderKind::Bedrock => d.region = Some("us-east-1".into()),
        ProviderKind::Vertex => {
            d.api_key = None;
            d.region = Some("us-central1".into());
            d.gcp_service_account = Some(SecretString::new(
                llmesh_tests::gemini::service_account_json("https://oauth2.googleapis.com/token"),
            ));
        }
        ProviderKind::OpenaiCompatible => d.base_url = Some("https://llm.example.com/v1".into()),
        _ => {}
    }
    d
}

/// Models `bedrock`, `claude` (Claude on Bedrock), `gemini`, `vertex` and `openai`, each
/// with `fetch` as its image fetching.
fn routes(fetch: &ImageFetchSpec) -> Routes {
    let model = |name: &str, d: DeploymentSpec| ModelSpec {
        image_fetch: fetch.clone(),
        ..ModelSpec::new(name, vec![d])
    };
    let snapshot = Snapshot {
        format: FORMAT,
        version: "t".into(),
        models: vec![
            model(
                "bedrock",
                deployment(ProviderKind::Bedrock, "amazon.nova-lite-v1:0"),
            ),
            model(
                "claude",
                deployment(
                    ProviderKind::Bedrock,
                    "anthropic.claude-3-5-haiku-20241022-v1:0",
                ),
            ),
            model(
                "gemini",
                deployment(ProviderKind::Gemini, "gemini-2.5-flash"),
            ),
            model(
                "vertex",
                deployment(ProviderKind::Vertex, "gemini-2.5-flash"),
            ),
            model("openai", deployment(ProviderKind::OpenaiCompatible, "m")),
        ],
        keys: vec![],
        budgets: vec![],
    };
    RoutesBuilder::new(Arc::new(DemoTransport))
        .build(&snapshot)
        .unwrap()
}

fn image_url(url: &str) -> Value {
    json!({"type": "image_url", "image_url": {"url": url}})
}

/// A chat body of one user turn with these parts.
fn chat(parts: Vec<Value>) -> Map<String, Value> {
    object(&json!({"model": "m", "messages": [{"role": "user", "content": parts}]}))
}

fn script() -> Arc<Scripted> {
    Arc::new(Scripted::with(&[
        (A, Step::Answer(Answer::image("image/png", PNG))),
        (B, Step::Answer(Answer::image("image/jpeg", JPEG))),
        (
            "https://images.example.com/slow.png",
            Step::Slow(Duration::from_secs(1), Answer::image("image/png", PNG)),
        ),
        ("https://images.example.com/hang.png", Step::Hang),
        (
            "https://images.example.com/to-metadata.png",
            Step::Answer(Answer::redirect("http://169.254.169.254/latest/meta-data/")),
        ),
    ]))
}

struct Run {
    result: Result<Option<Inlined>, UpstreamError>,
    asked: Vec<String>,
    metrics: String,
}

/// Inlines `body` (to `endpoint`) for model `name`'s deployment, once.
async fn inline(name: &str, endpoint: Endpoint, body: &Map<String, Value>) -> Run {
    run_with(&ImageFetchSpec::default(), name, endpoint, body, far()).await
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(600)
}

async fn run_with(
    fetch: &ImageFetchSpec,
    name: &str,
    endpoint: Endpoint,
    body: &Map<String, Value>,
    deadline: Instant,
) -> Run {
    let routes = routes(fetch);
    let model = routes.model(name).unwrap();
    let script = script();
    let fetcher = ImageFetcher::new(script.clone());
    let images = CallImages::new(&fetcher);
    let metrics = Metrics::new().unwrap();
    let call = view(endpoint, body, false, "m");
    let result = images
        .inline(
            model,
            model.deployments[0].dialect.as_ref(),
            &call,
            deadline,
            &metrics,
        )
        .await;
    Run {
        result,
        asked: script.asked(),
        metrics: String::from_utf8(metrics.render(None)).unwrap(),
    }
}

fn data_url(media_type: &str, bytes: &[u8]) -> String {
    format!("data:{media_type};base64,{}", base64_encode(bytes))
}

#[tokio::test]
async fn chat_images_are_fetched_once_each_and_inlined_as_data_urls() {
    let mut body = chat(vec![
        json!({"type": "text", "text": "Compare these."}),
        json!({"type": "image_url", "image_url": {"url": A, "detail": "low"}}),
        image_url("data:image/png;base64,AAAA"),
        image_url(A),
    ]);
    body["messages"].as_array_mut().unwrap().push(json!({
        "role": "tool", "tool_call_id": "call_1", "content": [image_url(B)]
    }));
    let run = inline("bedrock", Endpoint::ChatCompletions, &body).await;
    assert_eq!(run.asked, [A, B]);
    let sent = Value::Object((*run.result.unwrap().unwrap()).clone());
    let png = data_url("image/png", PNG);
    assert_eq!(
        sent["messages"][0]["content"],
        json!([
            {"type": "text", "text": "Compare these."},
            {"type": "image_url", "image_url": {"url": png, "detail": "low"}},
            image_url("data:image/png;base64,AAAA"),
            image_url(&png),
        ])
    );
    assert_eq!(
        sent["messages"][1]["content"],
        json!([image_url(&data_url("image/jpeg", JPEG))])
    );
    assert!(
        run.metrics
            .contains(r#"llmesh_image_fetches_total{model="bedrock",result="ok"} 2"#)
    );
    let bytes = PNG.len() + JPEG.len();
    assert!(
        run.metrics.contains(&format!(
            r#"llmesh_image_fetch_bytes_total{{model="bedrock"}} {bytes}"#
        )),
        "{}",
        run.metrics
    );
}

#[tokio::test]
async fn messages_served_natively_by_claude_on_bedrock_get_base64_sources() {
    let body = object(
        &json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "url", "url": A}, "cache_control": {"type": "ephemeral"}},
            {"type": "tool_result", "tool_use_id": "t1", "content": [
                {"type": "text", "text": "chart"},
                {"type": "image", "source": {"type": "url", "url": B}}
            ]},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
            {"type": "document", "source": {"type": "url", "url": "https://docs.example.com/a.pdf"}}
        ]}]}),
    );
    let run = inline("claude", Endpoint::Messages, &body).await;
    assert_eq!(run.asked, [A, B]);
    let sent = Value::Object((*run.result.unwrap().unwrap()).clone());
    let content = &sent["messages"][0]["content"];
    assert_eq!(
        content[0],
        json!({"type": "image", "cache_control": {"type": "ephemeral"}, "source": {
            "type": "base64", "media_type": "image/png", "data": base64_encode(PNG)}})
    );
    assert_eq!(
        content[1]["content"][1]["source"],
        json!({"type": "base64", "media_type": "image/jpeg", "data": base64_encode(JPEG)})
    );
    assert_eq!(content[2], body["messages"][0]["content"][2]);
    assert_eq!(
        content[3], body["messages"][0]["content"][3],
        "documents are left alone"
    );
}

#[tokio::test]
async fn only_the_urls_a_provider_cannot_take_are_fetched() {
    // Providers that fetch URLs themselves get the call as it is.
    let body = chat(vec![image_url(A)]);
    let run = inline("openai", Endpoint::ChatCompletions, &body).await;
    assert_eq!((run.result, run.asked.len()), (Ok(None), 0));
    // The Gemini API takes its own Files API URIs; Vertex takes URLs with an extension.
    let files = "https://generativelanguage.googleapis.com/v1beta/files/abc";
    let no_extension = "https://images.example.com/render?id=7";
    let body = chat(vec![image_url(files), image_url(A)]);
    let run = inline("gemini", Endpoint::ChatCompletions, &body).await;
    assert_eq!(run.asked, [A]);
    let sent = run.result.unwrap().unwrap();
    assert_eq!(sent["messages"][0]["content"][0], image_url(files));
    let body = chat(vec![image_url(A), image_url(no_extension)]);
    let run = inline("vertex", Endpoint::ChatCompletions, &body).await;
    assert_eq!(run.asked, [no_extension]);
    // Not http(s), or no images at all: nothing to fetch (the provider judges the rest).
    for parts in [
        vec![image_url("gs://bucket/a.png")],
        vec![image_url("data:image/png;base64,AAAA")],
        vec![json!({"type": "text", "text": "hi"})],
        vec![],
    ] {
        let run = inline("bedrock", Endpoint::ChatCompletions, &chat(parts)).await;
        assert_eq!((run.result, run.asked.len()), (Ok(None), 0));
    }
    // Fetching off: the URL goes to the provider as it is (which refuses it).
    let off = ImageFetchSpec {
        enabled: false,
        ..ImageFetchSpec::default()
    };
    let body = chat(vec![image_url(A)]);
    let run = run_with(&off, "bedrock", Endpoint::ChatCompletions, &body, far()).await;
    assert_eq!((run.result, run.asked.len()), (Ok(None), 0));
}

#[tokio::test]
async fn every_attempt_of_a_call_reuses_the_first_fetch_or_refusal() {
    let routes = routes(&ImageFetchSpec::default());
    let script = script();
    let fetcher = ImageFetcher::new(script.clone());
    let images = CallImages::new(&fetcher);
    let metrics = Metrics::new().unwrap();
    let bedrock = routes.model("bedrock").unwrap();
    let body = chat(vec![image_url(A)]);
    let call = view(Endpoint::ChatCompletions, &body, false, "m");
    let dialect = bedrock.deployments[0].dialect.as_ref();
    let first = images
        .inline(bedrock, dialect, &call, far(), &metrics)
        .await
        .unwrap()
        .unwrap();
    for _ in 0..3 {
        let again = images
            .inline(bedrock, dialect, &call, far(), &metrics)
            .await
            .unwrap()
            .unwrap();
        assert!(Arc::ptr_eq(&first, &again));
    }
    assert_eq!(script.asked(), [A]);
    // A fallback model with another policy fetches under its own.
    let strict = routes_with_hosts(&["other.example.com"]);
    let other = strict.model("bedrock").unwrap();
    let refused = images
        .inline(other, dialect, &call, far(), &metrics)
        .await
        .unwrap_err();
    assert_eq!(refused.code.as_deref(), Some("image_url_refused"));
    assert_eq!(script.asked(), [A], "refused before dialling");
    // A refusal is kept too.
    let bad = chat(vec![image_url(
        "https://images.example.com/to-metadata.png",
    )]);
    let call = view(Endpoint::ChatCompletions, &bad, false, "m");
    let images = CallImages::new(&fetcher);
    for _ in 0..2 {
        let err = images
            .inline(bedrock, dialect, &call, far(), &metrics)
            .await
            .unwrap_err();
        assert_eq!(err.code.as_deref(), Some("image_url_refused"));
    }
    assert_eq!(script.asked().len(), 2);
}

fn routes_with_hosts(hosts: &[&str]) -> Routes {
    routes(&ImageFetchSpec {
        allowed_hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
        ..ImageFetchSpec::default()
    })
}

#[tokio::test]
async fn refusals_are_400s_naming_the_image_and_why() {
    let body = chat(vec![
        image_url(A),
        image_url("https://images.example.com/to-metadata.png"),
    ]);
    let run = inline("bedrock", Endpoint::ChatCompletions, &body).await;
    let err = run.result.unwrap_err();
    assert_eq!(
        (
            err.class,
            err.status,
            err.code.as_deref(),
            err.param.as_deref()
        ),
        (
            ErrorClass::Invalid,
            Some(400),
            Some("image_url_refused"),
            Some("messages")
        )
    );
    assert_eq!(
        err.message,
        "Image URL #2 (host images.example.com) was not fetched: it was redirected to a URL \
         that is or resolves to a loopback, private, link-local or otherwise non-public \
         address. Send the image as a data URL, or allow it in the LLMModel's imageFetch."
    );
    assert!(!err.message.contains("169.254"), "no address is quoted");
    assert!(
        run.metrics
            .contains(r#"llmesh_image_fetches_total{model="bedrock",result="refused_address"} 1"#),
        "{}",
        run.metrics
    );

    let missing = chat(vec![image_url("https://images.example.com/missing.png")]);
    let err = inline("bedrock", Endpoint::ChatCompletions, &missing)
        .await
        .result
        .unwrap_err();
    assert_eq!(err.code.as_deref(), Some("image_fetch_failed"));
    assert_eq!(
        err.message,
        "Image URL #1 (host images.example.com) was not fetched: the connection to its server failed."
    );
}

#[tokio::test]
async fn more_images_than_the_limit_are_refused_before_any_is_fetched() {
    let limited = ImageFetchSpec {
        max_images: 2,
        ..ImageFetchSpec::default()
    };
    let body = chat(vec![
        image_url(A),
        image_url(B),
        image_url("https://images.example.com/c.png"),
    ]);
    let run = run_with(&limited, "bedrock", Endpoint::ChatCompletions, &body, far()).await;
    let err = run.result.unwrap_err();
    assert_eq!(err.code.as_deref(), Some("image_url_refused"));
    assert!(
        err.message.contains("fetches at most 2 per call"),
        "{}",
        err.message
    );
    assert!(run.asked.is_empty());
    assert!(
        run.metrics
            .contains(r#"llmesh_image_fetches_total{model="bedrock",result="too_many_images"} 1"#)
    );
}

#[tokio::test(start_paused = true)]
async fn the_time_limit_covers_all_images_and_never_outlasts_the_call() {
    let quick = ImageFetchSpec {
        timeout_ms: 2_000,
        ..ImageFetchSpec::default()
    };
    let body = chat(vec![
        image_url(A),
        image_url("https://images.example.com/hang.png"),
    ]);
    let started = Instant::now();
    let run = run_with(&quick, "bedrock", Endpoint::ChatCompletions, &body, far()).await;
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    let err = run.result.unwrap_err();
    assert_eq!(err.code.as_deref(), Some("image_fetch_failed"));
    assert!(
        err.message.contains("time limit (2000 ms)"),
        "{}",
        err.message
    );
    assert!(
        run.metrics
            .contains(r#"llmesh_image_fetches_total{model="bedrock",result="timeout"} 1"#)
    );

    // The call's deadline comes first.
    let started = Instant::now();
    let run = run_with(
        &quick,
        "bedrock",
        Endpoint::ChatCompletions,
        &body,
        started + Duration::from_millis(500),
    )
    .await;
    assert_eq!(started.elapsed(), Duration::from_millis(500));
    assert!(run.result.is_err());
}

#[tokio::test(start_paused = true)]
async fn images_are_fetched_concurrently_a_few_at_a_time() {
    // Nine slow images (1 s each), four at a time: three rounds.
    let body = chat(
        (0..9)
            .map(|i| image_url(&format!("https://images.example.com/slow.png?{i}")))
            .collect(),
    );
    let script = Arc::new(Scripted::with(
        &(0..9)
            .map(|i| {
                (
                    format!("https://images.example.com/slow.png?{i}"),
                    Step::Slow(Duration::from_secs(1), Answer::image("image/png", PNG)),
                )
            })
            .collect::<Vec<_>>()
            .iter()
            .map(|(u, s)| (u.as_str(), s.clone()))
            .collect::<Vec<_>>(),
    ));
    let routes = routes(&ImageFetchSpec::default());
    let model = routes.model("bedrock").unwrap();
    let fetcher = ImageFetcher::new(script.clone());
    let images = CallImages::new(&fetcher);
    let metrics = Metrics::new().unwrap();
    let call = view(Endpoint::ChatCompletions, &body, false, "m");
    let started = Instant::now();
    let inlined = images
        .inline(
            model,
            model.deployments[0].dialect.as_ref(),
            &call,
            far(),
            &metrics,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    assert_eq!(script.asked().len(), 9);
    let parts = inlined["messages"][0]["content"].as_array().unwrap();
    assert!(
        parts
            .iter()
            .all(|p| p["image_url"]["url"] == data_url("image/png", PNG))
    );
}

#[test]
fn policies_are_validated_naming_the_field() {
    let bad = |spec: ImageFetchSpec| ImagePolicy::from_spec(&spec).unwrap_err().0;
    let d = ImageFetchSpec::default;
    assert_eq!(
        bad(ImageFetchSpec {
            allowed_hosts: vec!["Bad Host".into()],
            ..d()
        }),
        "allowedHosts"
    );
    assert_eq!(
        bad(ImageFetchSpec {
            allow_private_addresses: vec!["10.0.0.1/8".into()],
            ..d()
        }),
        "allowPrivateAddresses"
    );
    assert_eq!(
        bad(ImageFetchSpec {
            max_bytes: 0,
            ..d()
        }),
        "maxBytes"
    );
    assert_eq!(
        bad(ImageFetchSpec {
            max_bytes: MAX_IMAGE_BYTES + 1,
            ..d()
        }),
        "maxBytes"
    );
    assert_eq!(
        bad(ImageFetchSpec {
            timeout_ms: 0,
            ..d()
        }),
        "timeoutMs"
    );
    assert_eq!(
        bad(ImageFetchSpec {
            max_images: 0,
            ..d()
        }),
        "maxImages"
    );
    assert_eq!(ImagePolicy::from_spec(&d()), Ok(ImagePolicy::default()));
}

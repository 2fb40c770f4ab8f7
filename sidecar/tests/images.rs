//! Image URLs through the running sidecar, with a real image server on loopback: the
//! Gemini API and Bedrock mocks receive the fetched bytes in their own wire formats
//! (`inlineData {mimeType, data}`; `image {format, source {bytes}}`), from chat,
//! Messages and Responses calls; the image is fetched once however many attempts the
//! call takes; and the guard refuses, with a 400 in the caller's API shape, loopback by
//! default (the test server is allowed only through the model's `imageFetch`), redirects
//! to other non-public addresses, and images too large, of the wrong type or too slow.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bytes::Bytes;
use http::StatusCode;
use llmesh_sidecar::config::snapshot::*;
use llmesh_sidecar::provider::openai_wire::base64_decode;
use llmesh_tests::gemini::{self, MockGemini};
use llmesh_tests::mock::{Mock, MockConfig, Plain};
use llmesh_tests::{MockBedrock, MockHttp, Reply};
use serde_json::{Value, json};
use support::*;

/// A 1x1 PNG, base64-encoded.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

fn png() -> Bytes {
    Bytes::from(base64_decode(PNG).unwrap())
}

/// An image server on 127.0.0.1 answering every request with the PNG.
async fn image_server() -> MockHttp {
    let server = MockHttp::start().await;
    server.set_default(Reply::raw(200, "image/png", vec![png()]));
    server
}

fn url(server: &MockHttp, path: &str) -> String {
    format!("http://127.0.0.1:{}{path}", server.addr().port())
}

/// Fetching that allows the test server (and only it): its host and port, and loopback.
fn allowing(server: &MockHttp) -> ImageFetchSpec {
    ImageFetchSpec {
        allowed_hosts: vec![format!("127.0.0.1:{}", server.addr().port())],
        allow_private_addresses: vec!["127.0.0.1".into()],
        ..ImageFetchSpec::default()
    }
}

fn gemini_deployment(mock: &MockGemini) -> DeploymentSpec {
    let mut d = DeploymentSpec::new("gemini", ProviderKind::Gemini, "gemini-2.5-flash");
    d.base_url = Some(mock.base_url());
    d.api_key = Some(SecretString::new(gemini::API_KEY));
    d
}

fn bedrock_deployment(mock: &MockBedrock, model_id: &str) -> DeploymentSpec {
    let mut d = DeploymentSpec::new("bedrock", ProviderKind::Bedrock, model_id);
    d.base_url = Some(mock.base_url());
    d.region = Some(mock.region().into());
    let creds = mock.credentials();
    d.aws = Some(AwsCredentials::new(
        &creds.access_key_id,
        &creds.secret_access_key,
    ));
    d
}

const NOVA: &str = "amazon.nova-lite-v1:0";
const CLAUDE: &str = "anthropic.claude-3-5-haiku-20241022-v1:0";

/// A sidecar serving `deployment` as model `m`, fetching images as `fetch` says.
async fn serving(deployment: DeploymentSpec, fetch: ImageFetchSpec) -> Running {
    let mut m = model("m", vec![deployment]);
    m.image_fetch = fetch;
    Running::start(Some(snapshot("v1", vec![m]))).await
}

/// A chat call with a text part and the image at `url`.
fn chat_with(url: &str) -> Value {
    json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is in this image?"},
        {"type": "image_url", "image_url": {"url": url}}
    ]}]})
}

fn counter(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn gemini_receives_the_fetched_image_as_inline_data() {
    let images = image_server().await;
    let gemini = MockGemini::start().await;
    let sidecar = serving(gemini_deployment(&gemini), allowing(&images)).await;
    let (status, _, body) = post(
        sidecar.api,
        "/v1/chat/completions",
        chat_with(&url(&images, "/cat.png?sig=abc")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sent = gemini.bodies().pop().unwrap();
    assert_eq!(
        sent["contents"][0]["parts"],
        json!([
            {"text": "What is in this image?"},
            {"inlineData": {"mimeType": "image/png", "data": PNG}}
        ])
    );
    let size = png().len();
    let answer = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        answer.contains(&format!("[image/png {size} bytes]")),
        "{answer}"
    );
    let fetched = images.requests();
    assert_eq!(fetched.len(), 1);
    assert_eq!(fetched[0].path, "/cat.png?sig=abc");
    assert!(
        fetched[0].header("authorization").is_none(),
        "no client credential leaks"
    );
    let metrics = sidecar.metrics().await;
    assert_eq!(
        counter(
            &metrics,
            r#"llmesh_image_fetches_total{model="m",result="ok"}"#
        ),
        1
    );
    assert_eq!(
        counter(&metrics, r#"llmesh_image_fetch_bytes_total{model="m"}"#),
        size as u64
    );
}

#[tokio::test]
async fn bedrock_receives_the_bytes_fetched_once_however_many_attempts() {
    let images = image_server().await;
    let bedrock = MockBedrock::start().await;
    // The first attempt fails on Bedrock's side and is retried.
    bedrock.enqueue(Reply::exception("InternalServerException", "try again"));
    let sidecar = serving(bedrock_deployment(&bedrock, NOVA), allowing(&images)).await;
    let (status, _, body) = post(
        sidecar.api,
        "/v1/chat/completions",
        chat_with(&url(&images, "/cat.png")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sent = bedrock.bodies();
    assert_eq!(sent.len(), 2);
    for body in &sent {
        assert_eq!(
            body["messages"][0]["content"][1],
            json!({"image": {"format": "png", "source": {"bytes": PNG}}})
        );
    }
    assert_eq!(images.request_count(), 1, "fetched once for both attempts");
    let answer = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        answer.contains(&format!("[image/png {} bytes]", png().len())),
        "{answer}"
    );
}

#[tokio::test]
async fn messages_and_responses_calls_get_their_images_fetched_too() {
    let images = image_server().await;
    let image = url(&images, "/cat.png");
    let bedrock = MockBedrock::start().await;
    let gemini = MockGemini::start().await;
    let specs = vec![
        ("claude", bedrock_deployment(&bedrock, CLAUDE)),
        ("nova", bedrock_deployment(&bedrock, NOVA)),
        ("gemini", gemini_deployment(&gemini)),
    ]
    .into_iter()
    .map(|(name, d)| {
        let mut m = model(name, vec![d]);
        m.image_fetch = allowing(&images);
        m
    })
    .collect();
    let sidecar = Running::start(Some(snapshot("v1", specs))).await;

    // Messages on Claude, served natively through InvokeModel: a base64 source.
    let messages = |model: &str| {
        json!({"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Describe it."},
            {"type": "image", "source": {"type": "url", "url": image}}
        ]}]})
    };
    let (status, _, body) = post(sidecar.api, "/v1/messages", messages("claude")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sent = bedrock.bodies().pop().unwrap();
    assert_eq!(
        sent["messages"][0]["content"][1]["source"],
        json!({"type": "base64", "media_type": "image/png", "data": PNG})
    );

    // Messages on the Gemini API, through chat: inline data.
    let (status, _, body) = post(sidecar.api, "/v1/messages", messages("gemini")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sent = gemini.bodies().pop().unwrap();
    assert_eq!(
        sent["contents"][0]["parts"][1],
        json!({"inlineData": {"mimeType": "image/png", "data": PNG}})
    );

    // Responses on Bedrock Converse, through chat: bytes.
    let (status, _, body) = post(
        sidecar.api,
        "/v1/responses",
        json!({"model": "nova", "input": [{"role": "user", "content": [
            {"type": "input_text", "text": "Describe it."},
            {"type": "input_image", "image_url": image}
        ]}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sent = bedrock.bodies().pop().unwrap();
    assert_eq!(
        sent["messages"][0]["content"][1],
        json!({"image": {"format": "png", "source": {"bytes": PNG}}})
    );
    assert_eq!(images.request_count(), 3);
}

#[tokio::test]
async fn loopback_is_refused_by_default_in_the_callers_api_shape() {
    let images = image_server().await;
    let bedrock = MockBedrock::start().await;
    let gemini = MockGemini::start().await;
    let mut claude = model("claude", vec![bedrock_deployment(&bedrock, CLAUDE)]);
    claude.image_fetch = ImageFetchSpec::default();
    let sidecar = Running::start(Some(snapshot(
        "v1",
        vec![model("gemini", vec![gemini_deployment(&gemini)]), claude],
    )))
    .await;
    let port = images.addr().port();
    // The literal address, the same address spelled in decimal, and `localhost`, which
    // the system resolver answers with a loopback address.
    for (image, why) in [
        (url(&images, "/cat.png"), "port"),
        (format!("http://2130706433:{port}/cat.png"), "port"),
        ("http://127.0.0.1/cat.png".to_owned(), "address"),
        ("http://2130706433/cat.png".to_owned(), "address"),
        ("http://[::ffff:127.0.0.1]/cat.png".to_owned(), "address"),
        (
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "address",
        ),
        ("http://localhost/cat.png".to_owned(), "host"),
    ] {
        let mut body = chat_with(&image);
        body["model"] = json!("gemini");
        let (status, _, body) = post(sidecar.api, "/v1/chat/completions", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{image}: {body}");
        let error = &body["error"];
        assert_eq!(
            (&error["type"], &error["code"], &error["param"]),
            (
                &json!("invalid_request_error"),
                &json!("image_url_refused"),
                &json!("messages")
            ),
            "{image}"
        );
        let message = error["message"].as_str().unwrap();
        let expected = match why {
            "port" => "uses a port other than the scheme's default",
            "address" => {
                "is or resolves to a loopback, private, link-local or otherwise non-public address"
            }
            _ => "names a host this model does not fetch images from",
        };
        assert!(message.contains(expected), "{image}: {message}");
    }
    // A Messages client gets Anthropic's error shape.
    let (status, _, body) = post(
        sidecar.api,
        "/v1/messages",
        json!({"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "url", "url": "http://127.0.0.1/x.png"}}
        ]}]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(images.request_count(), 0);
    assert_eq!(gemini.request_count(), 0);
    assert_eq!(bedrock.request_count(), 0);
    let metrics = sidecar.metrics().await;
    for (model, result, n) in [
        ("gemini", "refused_port", 2),
        ("gemini", "refused_address", 4),
        ("gemini", "refused_host", 1),
        ("claude", "refused_address", 1),
    ] {
        let series = format!(r#"llmesh_image_fetches_total{{model="{model}",result="{result}"}}"#);
        assert_eq!(counter(&metrics, &series), n, "{series}");
    }
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_after_resolution() {
    let images = image_server().await;
    let gemini = MockGemini::start().await;
    let port = images.addr().port();
    // `localhost` named in the allow-list is still refused: its address is loopback.
    let named = ImageFetchSpec {
        allowed_hosts: vec![format!("localhost:{port}")],
        ..ImageFetchSpec::default()
    };
    let sidecar = serving(gemini_deployment(&gemini), named.clone()).await;
    let image = format!("http://localhost:{port}/cat.png");
    let (status, _, body) = post(sidecar.api, "/v1/chat/completions", chat_with(&image)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "image_url_refused");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("resolves to a loopback"),
        "{body}"
    );
    assert_eq!(images.request_count(), 0);
    // Allowing loopback lets the internal server through.
    let allowed = ImageFetchSpec {
        allow_private_addresses: vec!["127.0.0.0/8".into(), "::1".into()],
        ..named
    };
    let sidecar = serving(gemini_deployment(&gemini), allowed).await;
    let (status, _, body) = post(sidecar.api, "/v1/chat/completions", chat_with(&image)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(images.request_count(), 1);
}

#[tokio::test]
async fn redirects_from_an_allowed_server_to_other_addresses_are_refused() {
    // The inner server listens on another loopback address, which the model does not
    // allow: a redirect there is refused before it is dialled.
    let inner = Mock::serve(
        Plain,
        MockConfig {
            listen: "127.0.0.2:0".parse().unwrap(),
            ..MockConfig::default()
        },
    )
    .await
    .unwrap();
    inner.set_default(Reply::raw(200, "image/png", vec![png()]));
    let images = image_server().await;
    let gemini = MockGemini::start().await;
    let inner_host = format!("127.0.0.2:{}", inner.addr().port());
    let mut fetch = allowing(&images);
    fetch.allowed_hosts.push(inner_host.clone());
    fetch.allowed_hosts.push("169.254.169.254".into());
    // Even listed, the metadata address is never fetched.
    fetch.allow_private_addresses.push("169.254.0.0/16".into());
    let sidecar = serving(gemini_deployment(&gemini), fetch).await;
    for target in [
        format!("http://{inner_host}/secret.png"),
        "http://169.254.169.254/latest/meta-data/iam/".to_owned(),
    ] {
        images.set_default(Reply::raw(302, "text/plain", vec![]).with_header("location", &target));
        let (status, _, body) = post(
            sidecar.api,
            "/v1/chat/completions",
            chat_with(&url(&images, "/cat.png")),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{target}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("redirected to a URL that is or resolves to a loopback"),
            "{message}"
        );
        assert!(
            !message.contains("127.0.0.2") && !message.contains("169.254"),
            "{message}"
        );
    }
    assert_eq!(inner.request_count(), 0);
    assert_eq!(gemini.request_count(), 0);

    // A redirect within what is allowed is followed.
    images.set_default(Reply::raw(200, "image/png", vec![png()]));
    let outer = image_server().await;
    let mut fetch = allowing(&images);
    fetch
        .allowed_hosts
        .push(format!("127.0.0.1:{}", outer.addr().port()));
    outer.set_default(
        Reply::raw(301, "text/plain", vec![]).with_header("location", &url(&images, "/cat.png")),
    );
    let sidecar = serving(gemini_deployment(&gemini), fetch).await;
    let (status, _, body) = post(
        sidecar.api,
        "/v1/chat/completions",
        chat_with(&url(&outer, "/moved.png")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(gemini.request_count(), 1);
}

#[tokio::test]
async fn images_too_large_of_the_wrong_type_or_too_slow_are_refused() {
    let images = image_server().await;
    let bedrock = MockBedrock::start().await;
    let strict = ImageFetchSpec {
        max_bytes: 128,
        timeout_ms: 300,
        ..allowing(&images)
    };
    let sidecar = serving(bedrock_deployment(&bedrock, NOVA), strict).await;
    let big = [png().to_vec(), vec![0; 200]].concat();
    for (reply, expected, result) in [
        (
            Reply::raw(200, "image/png", vec![Bytes::from(big)]),
            "larger than the limit of 128 bytes",
            "too_large",
        ),
        (
            Reply::raw(200, "text/html", vec![Bytes::from_static(b"<html></html>")]),
            "is not a PNG, JPEG, GIF or WebP image",
            "bad_type",
        ),
        (
            Reply::raw(200, "image/jpeg", vec![png()]),
            "is not a PNG, JPEG, GIF or WebP image",
            "bad_type",
        ),
        (
            Reply::raw(404, "text/plain", vec![Bytes::from_static(b"gone")]),
            "the server answered HTTP 404",
            "bad_status",
        ),
        (Reply::hang(), "time limit (300 ms)", "timeout"),
    ] {
        images.set_default(reply);
        let (status, _, body) = post(
            sidecar.api,
            "/v1/chat/completions",
            chat_with(&url(&images, "/cat.png")),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{expected}: {body}");
        assert_eq!(body["error"]["code"], "image_fetch_failed", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{message}");
        let series = format!(r#"llmesh_image_fetches_total{{model="m",result="{result}"}}"#);
        assert!(counter(&sidecar.metrics().await, &series) >= 1, "{series}");
    }
    assert_eq!(bedrock.request_count(), 0);
}

#[tokio::test]
async fn fetching_off_refuses_urls_as_the_provider_would() {
    let images = image_server().await;
    let gemini = MockGemini::start().await;
    let off = ImageFetchSpec {
        enabled: false,
        ..allowing(&images)
    };
    let sidecar = serving(gemini_deployment(&gemini), off).await;
    let (status, _, body) = post(
        sidecar.api,
        "/v1/chat/completions",
        chat_with(&url(&images, "/cat.png")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_value");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("imageFetch is disabled"),
        "{body}"
    );
    assert_eq!(images.request_count(), 0);
}

/// An image server behind a private CA is fetched once the sidecar trusts that CA
/// (`--ca-file`), as the model upstreams are; without it the fetch fails on TLS.
#[tokio::test]
async fn images_behind_the_sidecars_private_ca_are_fetched() {
    let ca = llmesh_tests::tls::TestCa::new("llmesh image CA");
    let images = Mock::serve(
        Plain,
        MockConfig {
            tls: Some(ca.server_config(&["127.0.0.1"])),
            ..MockConfig::default()
        },
    )
    .await
    .unwrap();
    images.set_default(Reply::raw(200, "image/png", vec![png()]));
    let image = format!("https://127.0.0.1:{}/cat.png", images.addr().port());
    let allowed = ImageFetchSpec {
        allowed_hosts: vec![format!("127.0.0.1:{}", images.addr().port())],
        allow_private_addresses: vec!["127.0.0.1".into()],
        ..ImageFetchSpec::default()
    };
    let gemini = MockGemini::start().await;
    let mut m = model("m", vec![gemini_deployment(&gemini)]);
    m.image_fetch = allowed;
    let snap = snapshot("v1", vec![m]);

    let untrusting = Running::start(Some(snap.clone())).await;
    let (status, _, body) = post(untrusting.api, "/v1/chat/completions", chat_with(&image)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "image_fetch_failed", "{body}");
    assert_eq!(gemini.request_count(), 0);

    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("image-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ca.pem");
    std::fs::write(&file, ca.pem()).unwrap();
    let trusting = Running::start_with(Some(snap), |s| s.ca_files = vec![file.clone()]).await;
    let (status, _, body) = post(trusting.api, "/v1/chat/completions", chat_with(&image)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(gemini.request_count(), 1);
}

//! The official SDKs against the sidecar's inbound Messages and Responses APIs: runs
//! `tests/sdk/test_anthropic_sdk.py` (the `anthropic` package) and
//! `tests/sdk/test_openai_responses.py` (the `openai` package's `client.responses`) with
//! pytest, every test against two models: `claude`, served by an Anthropic-format
//! upstream, and `gpt`, served by an OpenAI-format one, so each API is exercised both
//! natively and through translation. Without Python, the packages or pytest the test is
//! skipped with a message, unless `LLMESH_REQUIRE_SDK=1` (set by `scripts/test.sh`,
//! which installs them) makes that a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Command;

use llmesh_sidecar::config::snapshot::{
    DeploymentSpec, ModelSpec, ProviderKind, SecretString, Snapshot,
};
use llmesh_tests::anthropic::API_KEY as ANTHROPIC_KEY;
use llmesh_tests::{MockAnthropic, MockOpenAi, Reply};
use serde_json::json;
use std::sync::Arc;
use support::*;

const KEY: &str = "sk-llmesh-sdk-main-0000000000000000";
const TIGHT_KEY: &str = "sk-llmesh-sdk-tight-000000000000000";

fn python() -> String {
    std::env::var("LLMESH_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn sdks_available() -> Result<(), String> {
    let out = Command::new(python())
        .args([
            "-c",
            "import anthropic, openai, pytest; openai.OpenAI.responses",
        ])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or_default()
            .to_owned())
    }
}

/// Runs pytest on `files` (under `tests/sdk/`) with `-k filter`.
async fn pytest(origin: String, files: &[&str], filter: &str) -> (bool, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/sdk");
    let files: Vec<_> = files.iter().map(|f| dir.join(f)).collect();
    let filter = filter.to_owned();
    tokio::task::spawn_blocking(move || {
        let out = Command::new(python())
            .args([
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-k",
                &filter,
            ])
            .args(files)
            .env("LLMESH_ORIGIN", &origin)
            .env("LLMESH_BASE_URL", format!("{origin}/v1"))
            .env("LLMESH_KEY", KEY)
            .env("LLMESH_TIGHT_KEY", TIGHT_KEY)
            .env("LLMESH_MODELS", "claude,gpt")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    })
    .await
    .unwrap()
}

fn no_retries(mut m: ModelSpec) -> ModelSpec {
    m.retry.rate_limited = 0;
    m.retry.server_error = 0;
    m
}

fn anthropic(mock: &MockAnthropic, upstream_model: &str) -> DeploymentSpec {
    let mut d = DeploymentSpec::new("anthropic", ProviderKind::Anthropic, upstream_model);
    d.base_url = Some(mock.base_url());
    d.api_key = Some(SecretString::new(ANTHROPIC_KEY));
    d
}

fn openai(mock: &MockOpenAi, upstream_model: &str) -> DeploymentSpec {
    let mut d = deployment("openai", &mock.base_url(), upstream_model);
    d.provider = ProviderKind::Openai;
    d
}

fn config(a: &MockAnthropic, o: &MockOpenAi) -> Arc<Snapshot> {
    let mut tight = key("tight", TIGHT_KEY);
    tight.rpm = Some(1);
    with(
        vec![
            model("claude", vec![anthropic(a, "claude-sonnet-4-5")]),
            model("gpt", vec![openai(o, "gpt-4o-mini")]),
            no_retries(model(
                "claude-overloaded",
                vec![anthropic(a, "claude-error-529")],
            )),
            no_retries(model("gpt-overloaded", vec![openai(o, "mock-error-503")])),
        ],
        vec![key("main", KEY), tight],
        vec![],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_sdks_work_against_the_inbound_apis() {
    if let Err(why) = sdks_available() {
        assert!(
            std::env::var("LLMESH_REQUIRE_SDK").as_deref() != Ok("1"),
            "the Anthropic and OpenAI SDKs are required but unavailable: {why}"
        );
        eprintln!(
            "SKIPPED: the anthropic or openai Python SDK or pytest is not installed ({why}); scripts/test.sh installs them"
        );
        return;
    }
    let a = MockAnthropic::start().await;
    let o = MockOpenAi::start().await;
    let sidecar = Running::start_with(Some(config(&a, &o)), |s| {
        s.max_body_bytes = 1024 * 1024;
    })
    .await;
    let origin = format!("http://{}", sidecar.api);
    let files = ["test_anthropic_sdk.py", "test_openai_responses.py"];

    // The tool loops need the upstreams to call a tool, then answer: each model's mock
    // gets the turns of one file's tests at a time, in the order pytest runs them (the
    // plain loop, then the streamed one), and loses what a failed test left over.
    let mut failures = Vec::new();
    let mut report = String::new();
    for file in files {
        for city in ["Paris", "Rome"] {
            for turn in [
                Reply::tool_call("get_weather", json!({"city": city})),
                Reply::ok(),
            ] {
                a.enqueue(turn.clone());
                o.enqueue(turn);
            }
        }
        let (ok, out) = pytest(origin.clone(), &[file], "tool_loop").await;
        if !ok || !out.contains("4 passed") {
            failures.push(format!("{file} tool loops"));
        }
        report.push_str(&out);
        a.clear_queue();
        o.clear_queue();
    }
    let (ok, out) = pytest(origin, &files, "not tool_loop").await;
    if !ok {
        failures.push("the other SDK tests".to_owned());
    }
    report.push_str(&out);
    assert!(failures.is_empty(), "failed: {failures:?}\n{report}");
    eprintln!("{report}");
}

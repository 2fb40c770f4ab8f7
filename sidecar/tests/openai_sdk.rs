//! The official OpenAI Python SDK, unmodified, against the sidecar: runs
//! `tests/sdk/test_openai_sdk.py` with pytest. Without Python, the `openai` package or
//! pytest the test is skipped with a message, unless `LLMESH_REQUIRE_SDK=1` (set by
//! `scripts/test.sh`, which installs them) makes that a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Command;

use llmesh_tests::{MockOpenAi, Reply};
use support::*;

fn python() -> String {
    std::env::var("LLMESH_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn sdk_available() -> Result<(), String> {
    let out = Command::new(python())
        .args(["-c", "import openai, pytest; print(openai.__version__)"])
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

async fn pytest(base_url: String, filter: &str) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/sdk/test_openai_sdk.py");
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
            .arg(script)
            .env("LLMESH_BASE_URL", base_url)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_python_sdk_works_against_the_sidecar() {
    if let Err(why) = sdk_available() {
        assert!(
            std::env::var("LLMESH_REQUIRE_SDK").as_deref() != Ok("1"),
            "the OpenAI SDK is required but unavailable: {why}"
        );
        eprintln!(
            "SKIPPED: the OpenAI Python SDK or pytest is not installed ({why}); scripts/test.sh installs them"
        );
        return;
    }
    let mock = MockOpenAi::start().await;
    let base = mock.base_url();
    let no_retries = |mut m: llmesh_sidecar::config::snapshot::ModelSpec| {
        m.retry.rate_limited = 0;
        m.retry.server_error = 0;
        m
    };
    let sidecar = Running::start(Some(snapshot(
        "sdk",
        vec![
            model("chat", vec![deployment("primary", &base, "gpt-4o-mini")]),
            model(
                "embed",
                vec![deployment("primary", &base, "text-embedding-3-small")],
            ),
            model(
                "text",
                vec![deployment("primary", &base, "gpt-3.5-turbo-instruct")],
            ),
            no_retries(model(
                "limited",
                vec![deployment("primary", &base, "mock-error-429")],
            )),
            no_retries(model(
                "broken",
                vec![deployment("primary", &base, "mock-error-500")],
            )),
            model(
                "small",
                vec![deployment("primary", &base, "mock-context-length")],
            ),
            model("cut", vec![deployment("primary", &base, "gpt-4o-mini")]),
        ],
    )))
    .await;
    let url = format!("http://{}/v1", sidecar.api);

    // The mid-stream case needs a scripted upstream reply, queued just before its one request.
    mock.enqueue(Reply::stream(&["a", "b", "c", "d"]).disconnect_after(2));
    let (ok, out) = pytest(url.clone(), "mid_stream").await;
    assert!(ok, "{out}");
    assert!(out.contains("1 passed"), "{out}");

    let (ok, out) = pytest(url, "not mid_stream").await;
    assert!(ok, "{out}");
    eprintln!("{out}");
}

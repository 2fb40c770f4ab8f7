//! The real agent CLIs, end to end: Claude Code (`claude -p`) and Codex CLI (`codex
//! exec`), each given a task that needs a tool ("create hello.txt containing hi") in a
//! fresh directory. A scripted upstream answers the first turn with a tool call and the
//! second, which must carry the tool's result, with a final text; the test checks the
//! file, the exit code and the final text.
//!
//! Each CLI runs against the upstream mock directly (which pins the scripted
//! conversation to what the CLI really sends and accepts) and through the sidecar, once
//! with an upstream of its own API (native) and once with the other provider's
//! (translated).
//!
//! The CLIs are npm packages with native binaries; `scripts/test.sh` installs them into
//! `.agents/` (or set `LLMESH_AGENTS_DIR` to a `node_modules/.bin` holding `claude` and
//! `codex`). Without them each test is skipped with a message, unless
//! `LLMESH_REQUIRE_AGENTS=1` (set by `scripts/test.sh` when the install succeeded) makes
//! that a failure. They run fully offline: no telemetry, no update checks, only the
//! loopback base URL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use llmesh_sidecar::config::snapshot::{DeploymentSpec, ProviderKind, SecretString};
use llmesh_tests::anthropic::API_KEY as ANTHROPIC_KEY;
use llmesh_tests::{MockAnthropic, MockOpenAi, Recorded, Reply};
use serde_json::{Value, json};
use support::*;

/// How long one CLI run may take; a run needs a second or two.
const RUN_LIMIT: Duration = Duration::from_secs(120);
/// The sidecar's model for Claude Code (`--model claude`).
const CLAUDE_MODEL: &str = "claude";
/// The sidecar's model for Codex: a slug Codex knows, so it sends its standard tool set
/// (`exec_command`, the freeform `apply_patch`, ...) rather than fallback metadata.
const CODEX_MODEL: &str = "gpt-5.5";
/// What the client side presents; the sidecar has no virtual keys here.
const CLIENT_KEY: &str = "sk-llmesh-agents-test";

fn agent_bin(name: &str) -> Result<PathBuf, String> {
    let dir = match std::env::var_os("LLMESH_AGENTS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.agents/node_modules/.bin"),
    };
    let bin = dir.join(name);
    if !bin.exists() {
        return Err(format!("{} not found", bin.display()));
    }
    let out = std::process::Command::new(&bin)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} --version failed: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(bin)
}

/// The CLI's binary, or `None` after printing why the test is skipped.
fn agent(name: &str) -> Option<PathBuf> {
    match agent_bin(name) {
        Ok(bin) => Some(bin),
        Err(why) => {
            assert!(
                std::env::var("LLMESH_REQUIRE_AGENTS").as_deref() != Ok("1"),
                "the agent CLI {name} is required but unavailable: {why}"
            );
            eprintln!(
                "SKIPPED: the agent CLI {name} is not installed ({why}); scripts/test.sh installs it"
            );
            None
        }
    }
}

/// A fresh directory for one run: `work/` where the agent works, `home/` as its HOME.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("agents")
            .join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("work")).unwrap();
        std::fs::create_dir_all(dir.join("home")).unwrap();
        Scratch(dir)
    }

    fn work(&self) -> PathBuf {
        self.0.join("work")
    }

    fn home(&self) -> PathBuf {
        self.0.join("home")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    fn transcript(&self) -> String {
        format!("--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr)
    }
}

/// Runs `bin` with only `env` (and a minimal PATH) in `cwd`, stdin closed, killed
/// after [`RUN_LIMIT`].
async fn run(bin: &Path, args: &[&str], cwd: &Path, env: &[(&str, String)]) -> Run {
    let mut command = tokio::process::Command::new(bin);
    command
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    let child = command.spawn().unwrap();
    match tokio::time::timeout(RUN_LIMIT, child.wait_with_output()).await {
        Ok(out) => {
            let out = out.unwrap();
            Run {
                ok: out.status.success(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        }
        Err(_) => panic!("{} did not finish within {RUN_LIMIT:?}", bin.display()),
    }
}

/// Which credential header Claude Code sends.
#[derive(Clone, Copy)]
enum Credential {
    /// `ANTHROPIC_API_KEY`: `x-api-key`.
    ApiKey,
    /// `ANTHROPIC_AUTH_TOKEN`: `Authorization: Bearer`.
    AuthToken,
}

/// Claude Code in print mode against `base_url` (no `/v1`).
async fn claude_code(
    bin: &Path,
    scratch: &Scratch,
    base_url: &str,
    key: &str,
    credential: Credential,
    model: &str,
) -> Run {
    let key_var = match credential {
        Credential::ApiKey => "ANTHROPIC_API_KEY",
        Credential::AuthToken => "ANTHROPIC_AUTH_TOKEN",
    };
    let env = [
        ("HOME", scratch.home().display().to_string()),
        // --dangerously-skip-permissions refuses to run as root outside a sandbox.
        ("IS_SANDBOX", "1".into()),
        ("ANTHROPIC_BASE_URL", base_url.to_owned()),
        (key_var, key.to_owned()),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".into()),
        ("DISABLE_TELEMETRY", "1".into()),
        ("DISABLE_AUTOUPDATER", "1".into()),
        ("DISABLE_ERROR_REPORTING", "1".into()),
        // A failure shows at once rather than after minutes of backoff.
        ("CLAUDE_CODE_MAX_RETRIES", "0".into()),
    ];
    let args = [
        "-p",
        "Create the file hello.txt containing hi.",
        "--model",
        model,
        "--dangerously-skip-permissions",
    ];
    run(bin, &args, &scratch.work(), &env).await
}

/// `codex exec` against a Responses API at `base_url` (with `/v1`).
async fn codex(bin: &Path, scratch: &Scratch, base_url: &str, key: &str, model: &str) -> Run {
    let codex_home = scratch.home().join(".codex");
    std::fs::create_dir_all(&codex_home).unwrap();
    let config = format!(
        r#"model = "{model}"
model_provider = "llmesh"

[model_providers.llmesh]
name = "llmesh"
base_url = "{base_url}"
env_key = "LLMESH_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
"#
    );
    std::fs::write(codex_home.join("config.toml"), config).unwrap();
    let env = [
        ("HOME", scratch.home().display().to_string()),
        ("CODEX_HOME", codex_home.display().to_string()),
        ("LLMESH_API_KEY", key.to_owned()),
    ];
    let args = [
        "exec",
        "--skip-git-repo-check",
        "--dangerously-bypass-approvals-and-sandbox",
        "Create the file hello.txt containing hi.",
    ];
    run(bin, &args, &scratch.work(), &env).await
}

/// The file the task asked for.
fn assert_created(scratch: &Scratch, run: &Run) {
    assert!(run.ok, "the agent failed\n{}", run.transcript());
    let path = scratch.work().join("hello.txt");
    let content = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", path.display(), run.transcript()));
    assert_eq!(content.trim_end(), "hi", "{}", run.transcript());
    assert!(
        run.stdout.contains("Created hello.txt."),
        "the final answer is missing\n{}",
        run.transcript()
    );
}

/// The turns a scripted upstream saw: exactly two model calls (the tool call, then the
/// answer), every one streamed.
fn model_calls(requests: &[Recorded], path: &str) -> Vec<Value> {
    let calls: Vec<Value> = requests
        .iter()
        .filter(|r| r.path_only().ends_with(path))
        .map(Recorded::json)
        .collect();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(calls.len(), 2, "upstream calls: {paths:?}");
    calls
}

/// The final answer, streamed in pieces.
fn final_answer() -> Reply {
    Reply::stream(&["Created ", "hello.txt."])
}

/// Claude Code's file-writing tool call.
fn write_tool(scratch: &Scratch) -> Reply {
    let path = scratch.work().join("hello.txt").display().to_string();
    Reply::tool_call("Write", json!({"file_path": path, "content": "hi"}))
}

/// Codex's shell tool call.
fn exec_command() -> Reply {
    Reply::tool_call("exec_command", json!({"cmd": "printf hi > hello.txt"}))
}

/// Codex's freeform patch tool call.
fn apply_patch() -> Reply {
    let patch = "*** Begin Patch\n*** Add File: hello.txt\n+hi\n*** End Patch\n";
    Reply::tool_call("apply_patch", json!(patch))
}

/// A sidecar serving `name` from one deployment, with room for agents' large bodies.
async fn sidecar(name: &str, deployment: DeploymentSpec) -> Running {
    sidecar_with(name, deployment, false).await
}

/// [`sidecar`], its model dropping what its provider cannot take when `drop` is set.
async fn sidecar_with(name: &str, deployment: DeploymentSpec, drop: bool) -> Running {
    let mut m = model(name, vec![deployment]);
    m.drop_unsupported_params = drop;
    m.retry.rate_limited = 0;
    m.retry.server_error = 0;
    Running::start_with(Some(snapshot("agents", vec![m])), |s| {
        s.max_body_bytes = 8 * 1024 * 1024;
    })
    .await
}

fn anthropic_deployment(mock: &MockAnthropic) -> DeploymentSpec {
    let mut d = DeploymentSpec::new("anthropic", ProviderKind::Anthropic, "claude-sonnet-4-5");
    d.base_url = Some(mock.base_url());
    d.api_key = Some(SecretString::new(ANTHROPIC_KEY));
    d
}

fn openai_deployment(mock: &MockOpenAi) -> DeploymentSpec {
    let mut d = deployment("openai", &mock.base_url(), "gpt-5.5-upstream");
    d.provider = ProviderKind::Openai;
    d
}

/// The second Anthropic turn carries the tool's result for the tool_use of the first.
fn assert_anthropic_tool_result(calls: &[Value]) {
    let messages = calls[1]["messages"].as_array().unwrap();
    let tool_use = messages
        .iter()
        .flat_map(|m| m["content"].as_array().into_iter().flatten())
        .find(|b| b["type"] == "tool_use")
        .unwrap_or_else(|| panic!("no tool_use in {messages:?}"));
    let result = messages
        .iter()
        .flat_map(|m| m["content"].as_array().into_iter().flatten())
        .find(|b| b["type"] == "tool_result")
        .unwrap_or_else(|| panic!("no tool_result in {messages:?}"));
    assert_eq!(result["tool_use_id"], tool_use["id"]);
}

/// The second chat turn carries a `tool` message for the first turn's call.
fn assert_chat_tool_result(calls: &[Value]) {
    let messages = calls[1]["messages"].as_array().unwrap();
    let call_id = messages
        .iter()
        .find_map(|m| m["tool_calls"][0]["id"].as_str())
        .unwrap_or_else(|| panic!("no assistant tool_calls in {messages:?}"));
    assert!(
        messages
            .iter()
            .any(|m| m["role"] == "tool" && m["tool_call_id"] == call_id),
        "no tool message for {call_id} in {messages:?}"
    );
}

/// The second Responses turn carries the output of the first turn's call.
fn assert_responses_tool_output(calls: &[Value], output_type: &str) {
    let input = calls[1]["input"].as_array().unwrap();
    assert!(
        input
            .iter()
            .any(|i| i["type"] == output_type && i["call_id"].is_string()),
        "no {output_type} in {input:?}"
    );
}

// --- Claude Code ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_code_against_the_anthropic_mock_directly() {
    let Some(bin) = agent("claude") else { return };
    let scratch = Scratch::new("claude-direct");
    let mock = MockAnthropic::start().await;
    mock.enqueue(write_tool(&scratch));
    mock.enqueue(final_answer());
    let run = claude_code(
        &bin,
        &scratch,
        &mock.base_url(),
        ANTHROPIC_KEY,
        Credential::ApiKey,
        "claude-sonnet-4-5",
    )
    .await;
    assert_created(&scratch, &run);
    let requests = mock.requests();
    let calls = model_calls(&requests, "/v1/messages");
    assert_anthropic_tool_result(&calls);
    for r in &requests {
        assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
        assert!(r.header("anthropic-beta").is_some());
        assert_eq!(calls[0]["stream"], true);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_code_through_the_sidecar_to_anthropic() {
    let Some(bin) = agent("claude") else { return };
    let scratch = Scratch::new("claude-sidecar-anthropic");
    let mock = MockAnthropic::start().await;
    let sidecar = sidecar(CLAUDE_MODEL, anthropic_deployment(&mock)).await;
    mock.enqueue(write_tool(&scratch));
    mock.enqueue(final_answer());
    let base = format!("http://{}", sidecar.api);
    let run = claude_code(
        &bin,
        &scratch,
        &base,
        CLIENT_KEY,
        Credential::ApiKey,
        CLAUDE_MODEL,
    )
    .await;
    assert_created(&scratch, &run);
    let calls = model_calls(&mock.requests(), "/v1/messages");
    assert_anthropic_tool_result(&calls);
    assert_eq!(calls[0]["model"], "claude-sonnet-4-5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_code_through_the_sidecar_to_openai() {
    let Some(bin) = agent("claude") else { return };
    let scratch = Scratch::new("claude-sidecar-openai");
    let mock = MockOpenAi::start().await;
    let sidecar = sidecar(CLAUDE_MODEL, openai_deployment(&mock)).await;
    mock.enqueue(write_tool(&scratch));
    mock.enqueue(final_answer());
    let base = format!("http://{}", sidecar.api);
    // The bearer token this time (ANTHROPIC_AUTH_TOKEN).
    let run = claude_code(
        &bin,
        &scratch,
        &base,
        CLIENT_KEY,
        Credential::AuthToken,
        CLAUDE_MODEL,
    )
    .await;
    assert_created(&scratch, &run);
    let calls = model_calls(&mock.requests(), "/chat/completions");
    assert_chat_tool_result(&calls);
}

// --- Codex ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_against_the_openai_mock_directly() {
    let Some(bin) = agent("codex") else { return };
    let scratch = Scratch::new("codex-direct");
    let mock = MockOpenAi::start().await;
    mock.enqueue(apply_patch());
    mock.enqueue(final_answer());
    let run = codex(&bin, &scratch, &mock.base_url(), CLIENT_KEY, CODEX_MODEL).await;
    assert_created(&scratch, &run);
    let requests = mock.requests();
    let calls = model_calls(&requests, "/responses");
    assert_responses_tool_output(&calls, "custom_tool_call_output");
    assert_eq!(calls[0]["stream"], true);
    assert_eq!(calls[0]["store"], false);
    let tools = calls[0]["tools"].as_array().unwrap();
    assert!(
        tools
            .iter()
            .any(|t| t["type"] == "custom" && t["name"] == "apply_patch"),
        "{tools:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_through_the_sidecar_to_openai() {
    let Some(bin) = agent("codex") else { return };
    let scratch = Scratch::new("codex-sidecar-openai");
    let mock = MockOpenAi::start().await;
    let sidecar = sidecar(CODEX_MODEL, openai_deployment(&mock)).await;
    mock.enqueue(apply_patch());
    mock.enqueue(final_answer());
    let base = format!("http://{}/v1", sidecar.api);
    let run = codex(&bin, &scratch, &base, CLIENT_KEY, CODEX_MODEL).await;
    assert_created(&scratch, &run);
    let calls = model_calls(&mock.requests(), "/responses");
    assert_responses_tool_output(&calls, "custom_tool_call_output");
    assert_eq!(calls[0]["model"], "gpt-5.5-upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_through_the_sidecar_to_anthropic() {
    let Some(bin) = agent("codex") else { return };
    let scratch = Scratch::new("codex-sidecar-anthropic");
    let mock = MockAnthropic::start().await;
    // Codex always offers the hosted `web_search` and `tool_search`, which a provider
    // reached through chat does not have: the model drops them (docs/agents.md).
    let sidecar = sidecar_with(CODEX_MODEL, anthropic_deployment(&mock), true).await;
    mock.enqueue(exec_command());
    mock.enqueue(final_answer());
    let base = format!("http://{}/v1", sidecar.api);
    let run = codex(&bin, &scratch, &base, CLIENT_KEY, CODEX_MODEL).await;
    assert_created(&scratch, &run);
    let calls = model_calls(&mock.requests(), "/v1/messages");
    assert_anthropic_tool_result(&calls);
    let metrics = sidecar.metrics().await;
    assert!(
        metrics.contains(r#"param="web_search""#),
        "dropped hosted tools are counted: {metrics}"
    );
}

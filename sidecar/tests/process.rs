//! The built `llmesh-sidecar` binary as a real process: starts from a snapshot file,
//! serves through a mock upstream, applies file edits live, refuses a broken edit while
//! keeping the last good config, rejects bad flags, answers `--help` and `--version`,
//! and exits cleanly on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use http::StatusCode;
use llmesh_tests::MockOpenAi;
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_llmesh-sidecar");

fn write_snapshot(path: &Path, version: &str, base_url: &str, deployment_name: &str) {
    let snap = snapshot(
        version,
        vec![model(
            "chat",
            vec![deployment(deployment_name, base_url, "gpt-4o-mini")],
        )],
    );
    std::fs::write(path, serde_json::to_vec_pretty(&*snap).unwrap()).unwrap();
}

async fn wait_until<F: AsyncFnMut() -> bool>(mut check: F, what: &str) {
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn serves_reloads_and_shuts_down_as_a_process() {
    serves_reloads_and_shuts_down("1").await;
}

/// A thread per CPU, as a pod raising `--worker-threads` gets.
#[tokio::test]
async fn serves_reloads_and_shuts_down_on_a_thread_per_cpu() {
    serves_reloads_and_shuts_down("0").await;
}

async fn serves_reloads_and_shuts_down(threads: &str) {
    let mock = MockOpenAi::start().await;
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("process-{}-{threads}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("snapshot.json");
    write_snapshot(&config, "v1", &mock.base_url(), "first");
    let (api, admin) = (free_port(), free_port());
    let mut child = Proc(
        Command::new(BIN)
            .args([
                "--config",
                config.to_str().unwrap(),
                "--listen",
                &api.to_string(),
            ])
            .args(["--admin-listen", &admin.to_string(), "--log-format", "json"])
            .args(["--worker-threads", threads])
            .args(["--responses-ttl-seconds", "60"])
            .args(["--responses-max-bytes", "1048576"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    wait_until(
        async || {
            matches!(
                tokio::time::timeout(Duration::from_millis(200), try_get(admin, "/readyz")).await,
                Ok(Some(StatusCode::OK))
            )
        },
        "readiness",
    )
    .await;

    let (status, headers, body) = post(api, "/v1/chat/completions", chat("chat")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(header(&headers, "x-llmesh-deployment"), "first");
    // A Responses call is kept by the store the flags sized, and read back.
    let (status, _, body) = post(
        api,
        "/v1/responses",
        serde_json::json!({"model": "chat", "input": "hello"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["id"].as_str().unwrap();
    let (status, _, kept) = get(api, &format!("/v1/responses/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&kept));

    write_snapshot(&config, "v2", &mock.base_url(), "second");
    wait_until(
        async || {
            header(
                &post(api, "/v1/chat/completions", chat("chat")).await.1,
                "x-llmesh-deployment",
            ) == "second"
        },
        "the edited file to apply",
    )
    .await;

    std::fs::write(
        &config,
        b"{\"format\": 1, \"version\": \"v3\", \"models\": [{\"name\": ",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, headers, _) = post(api, "/v1/chat/completions", chat("chat")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header(&headers, "x-llmesh-deployment"),
        "second",
        "the last good config stays"
    );

    let pid = child.0.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let exit = child.0.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let mut logs = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(logs.contains("config file refused"), "{logs}");
    assert!(logs.contains("shutting down"), "{logs}");
    for line in logs.lines() {
        let entry: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(entry["level"].is_string());
        assert!(
            !line.contains("sk-upstream"),
            "a credential was logged: {line}"
        );
        assert!(!line.contains("hello"), "a prompt was logged: {line}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

async fn try_get(addr: SocketAddr, path: &str) -> Option<StatusCode> {
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    drop(stream);
    Some(get(addr, path).await.0)
}

#[test]
fn bad_flags_exit_2_with_usage() {
    let out = Command::new(BIN).args(["--bogus", "1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown flag --bogus") && err.contains("usage:"),
        "{err}"
    );
    let out = Command::new(BIN).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--operator"));
    let out = Command::new(BIN)
        .args(["--config", "/nonexistent/snapshot.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/snapshot.json"));
}

/// `--help`, `-h` and `--version` print to stdout and exit 0, as command-line tools do;
/// `--flag=value` is the same as `--flag value`.
#[test]
fn help_and_version_exit_0() {
    for flag in ["--help", "-h"] {
        let out = Command::new(BIN).arg(flag).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{flag}");
        let help = String::from_utf8_lossy(&out.stdout);
        for wanted in [
            "--operator URL",
            "LLMESH_OPERATOR_CA",
            "--listen ADDR",
            "LLMESH_LOG",
        ] {
            assert!(help.contains(wanted), "{flag}: {help}");
        }
    }
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("llmesh-sidecar {}", env!("CARGO_PKG_VERSION"))
    );
    // Both spellings reach the same check of the file.
    let out = Command::new(BIN)
        .arg("--config=/nonexistent/snapshot.json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/snapshot.json"));
}

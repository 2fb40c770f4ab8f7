//! `llmesh-local` as a real process on a copy of the quickstart manifests: serves the
//! demo models, applies a manifest edit live, refuses a broken edit naming the file and
//! field while the last good config keeps serving, and exits cleanly on SIGTERM; with
//! `--ca-file`, trusts an upstream behind a private CA.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_llmesh-local");

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The quickstart's virtual key (examples/quickstart/keys.yaml): its namespace has keys,
/// so every call needs one.
const QUICKSTART_KEY: &str = "sk-llmesh-quickstart-0000000000000000";

/// One HTTP/1.1 request with `Connection: close`; returns the status line, headers and body.
fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> Option<(u16, String, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {QUICKSTART_KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, head.to_ascii_lowercase(), body.to_owned()))
}

fn chat(addr: SocketAddr) -> (u16, String, String) {
    http(
        addr,
        "POST",
        "/v1/chat/completions",
        r#"{"model":"chat","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .unwrap()
}

fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

fn copy_quickstart(to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart");
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

const EDITED: &str = r#"apiVersion: llmesh.io/v1alpha1
kind: LLMModel
metadata:
  name: chat
spec:
  deployments:
    - name: edited
      provider: demo
      model: echo
"#;

#[test]
fn runs_the_quickstart_and_applies_edits_live() {
    let dir: PathBuf =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("local-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_quickstart(&dir);
    let (api, admin) = (free_port(), free_port());
    let mut child = Proc(
        Command::new(BIN)
            .args([
                "--manifests",
                dir.to_str().unwrap(),
                "--listen",
                &api.to_string(),
            ])
            .args(["--admin-listen", &admin.to_string()])
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    wait_for("readiness", || {
        http(admin, "GET", "/readyz", "").is_some_and(|r| r.0 == 200)
    });

    let (status, head, body) = chat(api);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("You said: hi"), "{body}");
    assert!(
        head.contains("x-llmesh-deployment: primary")
            || head.contains("x-llmesh-deployment: secondary")
    );
    let (status, _, body) = http(api, "GET", "/v1/models", "").unwrap();
    assert_eq!(status, 200);
    for model in ["chat", "chat-backup", "flaky", "embed"] {
        assert!(body.contains(&format!("\"id\":\"{model}\"")), "{body}");
    }
    let (status, head, _) = http(
        api,
        "POST",
        "/v1/chat/completions",
        r#"{"model":"flaky","messages":[{"role":"user","content":"x"}]}"#,
    )
    .unwrap();
    assert_eq!(status, 200);
    assert!(
        head.contains("x-llmesh-model: chat"),
        "flaky falls back to chat: {head}"
    );

    // A good edit applies live.
    let models = dir.join("models.yaml");
    let original = std::fs::read_to_string(&models).unwrap();
    let chat_doc = original
        .split("\n---\n")
        .position(|d| d.contains("name: chat\n"))
        .unwrap();
    let mut docs: Vec<String> = original.split("\n---\n").map(str::to_owned).collect();
    docs[chat_doc] = EDITED.to_owned();
    std::fs::write(&models, docs.join("\n---\n")).unwrap();
    wait_for("the edit to apply", || {
        chat(api).1.contains("x-llmesh-deployment: edited")
    });

    // A broken edit is refused, naming the file and field; the last good config stays.
    docs[chat_doc] = EDITED.replace("model: echo", "model: echo\n      weight: heavy");
    std::fs::write(&models, docs.join("\n---\n")).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let (status, head, _) = chat(api);
    assert_eq!(status, 200);
    assert!(head.contains("x-llmesh-deployment: edited"));

    let killed = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(child.0.wait().unwrap().success());
    let mut logs = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    let refused = logs
        .lines()
        .find(|l| l.contains("keeping the last good one"))
        .unwrap_or_else(|| panic!("{logs}"));
    assert!(refused.contains("models.yaml"), "{refused}");
    assert!(refused.contains("spec.deployments[0].weight"), "{refused}");
    assert!(!logs.contains("sk-llmesh-quickstart"), "a key was logged");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn refuses_to_start_on_a_broken_directory() {
    let dir: PathBuf =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("local-broken-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("m.yaml"), "apiVersion: llmesh.io/v1alpha1\nkind: LLMModel\nmetadata:\n  name: x\nspec:\n  deployments: []\n").unwrap();
    let out = Command::new(BIN)
        .args(["--manifests", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("deployments"), "{err}");
    let out = Command::new(BIN).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--manifests"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Both binaries of this crate answer `--help`/`-h` and `--version` with exit 0, and
/// read `--flag=value` (the chart's spelling) like `--flag value`.
#[test]
fn operator_and_local_speak_like_command_line_tools() {
    let operator = env!("CARGO_BIN_EXE_llmesh-operator");
    for (bin, wanted) in [
        (
            operator,
            &[
                "--push-listen ADDR",
                "LLMESH_WEBHOOK_LISTEN",
                "POD_NAMESPACE",
            ][..],
        ),
        (BIN, &["--manifests DIR", "LLMESH_MANIFESTS"]),
    ] {
        for flag in ["--help", "-h"] {
            let out = Command::new(bin).arg(flag).output().unwrap();
            assert_eq!(out.status.code(), Some(0), "{bin} {flag}");
            let help = String::from_utf8_lossy(&out.stdout);
            for w in wanted {
                assert!(help.contains(w), "{bin} {flag}: {help}");
            }
        }
        let out = Command::new(bin).arg("--version").output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("llmesh-"));
    }
    // The chart's args parse: the operator gets as far as looking for a cluster (exit 1),
    // not a usage error (exit 2).
    let out = Command::new(operator)
        .args([
            "--push-listen=127.0.0.1:0",
            "--admin-listen=127.0.0.1:0",
            "--log-format=json",
        ])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("Kubernetes client"), "{err}");
    for (args, wanted) in [
        (&["--push-listen=8443"][..], "--push-listen"),
        (&["--tls-cert=/a"], "--tls-cert and --tls-key go together"),
        (&["--log-format", "yaml"], "text or json"),
    ] {
        let out = Command::new(operator).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(wanted) && err.contains("usage:"), "{err}");
    }
}

/// `llmesh-local --ca-file`: the manifests name a self-hosted upstream behind a private
/// CA and nothing else; the flag makes every deployment trust it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_file_makes_a_private_upstream_trusted() {
    let ca = llmesh_tests::tls::TestCa::new("internal CA");
    let upstream = llmesh_tests::MockOpenAi::serve(
        Default::default(),
        llmesh_tests::MockConfig {
            tls: Some(ca.server_config(&["127.0.0.1"])),
            ..llmesh_tests::MockConfig::default()
        },
    )
    .await
    .unwrap();
    let dir: PathBuf =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("local-ca-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("manifests")).unwrap();
    std::fs::write(
        dir.join("manifests/chat.yaml"),
        format!(
            "apiVersion: llmesh.io/v1alpha1\nkind: LLMModel\nmetadata: {{name: chat}}\nspec:\n  \
             deployments:\n  - {{name: vllm, provider: vllm, model: llama, baseUrl: '{}'}}\n",
            upstream.base_url()
        ),
    )
    .unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    let (api, admin) = (free_port(), free_port());
    let _child = Proc(
        Command::new(BIN)
            .arg(format!("--manifests={}", dir.join("manifests").display()))
            .arg(format!("--ca-file={}", dir.join("ca.pem").display()))
            .arg(format!("--listen={api}"))
            .arg(format!("--admin-listen={admin}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("readiness", || {
        http(admin, "GET", "/readyz", "").is_some_and(|r| r.0 == 200)
    });
    let (status, _, body) = chat(api);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("mock reply to: hi"), "{body}");
    assert_eq!(upstream.requests().len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

//! Upstreams behind a private CA: the OpenAI mock serving HTTPS with a certificate from a
//! CA made at test time. Without that CA the call fails with a 502 that names the TLS
//! failure; with it, from the deployment's `tls` in the snapshot or from the sidecar's
//! `--ca-file`, it is served. The `llmesh-sidecar` binary refuses a bad CA file at start.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;

use http::StatusCode;
use llmesh_sidecar::config::snapshot::TlsSpec;
use llmesh_tests::tls::TestCa;
use llmesh_tests::{Mock, MockConfig, MockOpenAi};
use support::*;

/// The OpenAI mock on HTTPS, its certificate for 127.0.0.1 signed by `ca`.
async fn https_mock(ca: &TestCa) -> MockOpenAi {
    let config = MockConfig {
        tls: Some(ca.server_config(&["127.0.0.1", "localhost"])),
        ..MockConfig::default()
    };
    Mock::serve(Default::default(), config).await.unwrap()
}

fn snapshot_with(
    base_url: &str,
    tls: Option<TlsSpec>,
) -> std::sync::Arc<llmesh_sidecar::config::Snapshot> {
    let mut d = deployment("internal", base_url, "llama");
    d.tls = tls;
    snapshot(
        &format!("v-{}", tls_name(&d.tls)),
        vec![model("chat", vec![d])],
    )
}

fn tls_name(tls: &Option<TlsSpec>) -> &'static str {
    match tls {
        Some(_) => "tls",
        None => "plain",
    }
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("private-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn without_the_ca_the_call_fails_naming_the_tls_failure() {
    let ca = TestCa::new("llmesh private CA");
    let mock = https_mock(&ca).await;
    let sidecar = Running::start(Some(snapshot_with(&mock.base_url(), None))).await;
    let (status, _, body) = post(sidecar.api, "/v1/chat/completions", chat("chat")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("TLS certificate not trusted")
            && message.contains("unknown issuer")
            && message.contains("tls.caSecretRef"),
        "{message}"
    );
    println!("{message}");
    assert!(
        message.contains("internal"),
        "names the deployment: {message}"
    );
    assert!(
        mock.requests().is_empty(),
        "no request got through the handshake"
    );
}

#[tokio::test]
async fn the_deployments_ca_from_the_snapshot_is_trusted() {
    let ca = TestCa::new("llmesh private CA");
    let mock = https_mock(&ca).await;
    let sidecar = Running::start(Some(snapshot_with(&mock.base_url(), None))).await;
    let (status, _, _) = post(sidecar.api, "/v1/chat/completions", chat("chat")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);

    // The same deployment, its CA now resolved into the snapshot (as the operator does
    // from tls.caConfigMapRef): a reload, no restart.
    let tls = TlsSpec {
        ca_certificates: vec![ca.pem().to_owned()],
        system_roots: false,
    };
    sidecar
        .reconfigure(snapshot_with(&mock.base_url(), Some(tls)))
        .await;
    let (status, _, body) = post(sidecar.api, "/v1/chat/completions", chat("chat")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "mock reply to: hello"
    );
    let sent = mock.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].header("authorization"),
        Some("Bearer sk-upstream-internal")
    );

    // Another CA's certificate is still refused: the deployment trusts its CA, not all.
    let other = TestCa::new("another CA");
    let stranger = https_mock(&other).await;
    let tls = TlsSpec {
        ca_certificates: vec![ca.pem().to_owned()],
        system_roots: false,
    };
    let mut snap = (*snapshot_with(&stranger.base_url(), Some(tls))).clone();
    snap.version = "v-stranger".into();
    sidecar.reconfigure(std::sync::Arc::new(snap)).await;
    let (status, _, body) = post(sidecar.api, "/v1/chat/completions", chat("chat")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("(the web roots, 1 extra CA certificate; unknown issuer)"),
        "{body}"
    );
}

#[tokio::test]
async fn the_sidecars_ca_file_is_trusted_by_every_deployment() {
    let ca = TestCa::new("llmesh private CA");
    let mock = https_mock(&ca).await;
    // A bundle: a comment, another CA, then ours.
    let bundle = format!(
        "# internal CAs\n{}{}",
        TestCa::new("unrelated").pem(),
        ca.pem()
    );
    let file = temp_file("bundle.pem", &bundle);
    let sidecar = Running::start_with(Some(snapshot_with(&mock.base_url(), None)), |s| {
        s.ca_files = vec![file.clone()];
    })
    .await;
    let (status, _, body) = post(sidecar.api, "/v1/chat/completions", chat("chat")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn a_bad_ca_file_stops_the_sidecar_at_start() {
    let key_only = temp_file(
        "key.pem",
        &rcgen::KeyPair::generate().unwrap().serialize_pem(),
    );
    let missing = PathBuf::from("/nonexistent/llmesh/ca.pem");
    let config = temp_file(
        "snapshot.json",
        &serde_json::to_string(&*snapshot_with("https://127.0.0.1:1/v1", None)).unwrap(),
    );
    for (file, said) in [(key_only, "holds a private key"), (missing, "No such file")] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_llmesh-sidecar"))
            .arg(format!("--config={}", config.display()))
            .arg(format!("--ca-file={}", file.display()))
            .args(["--listen=127.0.0.1:0", "--admin-listen=127.0.0.1:0"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success());
        assert!(
            stderr.contains(&format!("--ca-file {}", file.display())) && stderr.contains(said),
            "{stderr}"
        );
    }
}

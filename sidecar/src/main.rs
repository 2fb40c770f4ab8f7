//! `llmesh-sidecar`: runs the data plane from a compiled config snapshot file.
//!
//! ```text
//! llmesh-sidecar --config snapshot.json [--listen 127.0.0.1:4000] [--admin-listen 0.0.0.0:4001]
//!                [--max-body-bytes N] [--log-format text|json]
//! ```
//! To run from the Kubernetes manifests themselves, use `llmesh-local`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use llmesh_sidecar::{Sidecar, cli, config, shutdown_signal, telemetry};

const USAGE: &str = "usage: llmesh-sidecar --config FILE [--listen ADDR] [--admin-listen ADDR] [--max-body-bytes N] [--log-format text|json]";

#[tokio::main]
async fn main() -> ExitCode {
    let parsed = match cli::parse(
        std::env::args().skip(1),
        |k| std::env::var(k).ok(),
        &["config"],
    ) {
        Ok(parsed) => parsed,
        Err(err) => {
            eprintln!("llmesh-sidecar: {err}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(parsed.log_format);
    let Some(path) = parsed.extra.get("config").map(PathBuf::from) else {
        eprintln!("llmesh-sidecar: --config (or LLMESH_CONFIG) is required\n{USAGE}");
        return ExitCode::from(2);
    };
    // Fail fast on a bad file at start; later edits are checked as they come.
    let first = match config::file::load(&path) {
        Ok(snapshot) => snapshot,
        Err(err) => {
            eprintln!("llmesh-sidecar: {err}");
            return ExitCode::from(2);
        }
    };
    let sidecar = match Sidecar::bind(parsed.settings).await {
        Ok(sidecar) => sidecar,
        Err(err) => {
            eprintln!("llmesh-sidecar: {err}");
            return ExitCode::FAILURE;
        }
    };
    let (tx, rx) = tokio::sync::watch::channel(Some(Arc::new(first)));
    tokio::spawn(config::file::watch(path, Duration::from_secs(1), tx));
    sidecar.serve(rx, shutdown_signal()).await;
    ExitCode::SUCCESS
}

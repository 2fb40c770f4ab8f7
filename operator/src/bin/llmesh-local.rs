//! `llmesh-local`: runs a sidecar on this machine from a directory of Kubernetes
//! manifests — the same LLMModel, VirtualKey, Budget, Secret and ConfigMap files you would
//! `kubectl apply`. The directory is polled: a good edit applies live, a broken one is
//! logged with its file and field while the last good config keeps serving.
//!
//! Flags and variables: [`llmesh_operator::cli::LOCAL`] (`llmesh-local --help`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use llmesh_operator::cli::LOCAL;
use llmesh_operator::local::{DirSource, Outcome, watch_dir};
use llmesh_sidecar::{Sidecar, cli, shutdown_signal};

/// How often the directory is checked for edits.
const POLL: Duration = Duration::from_millis(500);

#[tokio::main]
async fn main() -> ExitCode {
    let spec = &LOCAL;
    let (values, settings) = match cli::serve_from_process(spec) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    let Some(dir) = values.get("manifests").map(PathBuf::from) else {
        return cli::usage_error(spec, "--manifests (or LLMESH_MANIFESTS) is required");
    };
    // Refuse to start on a broken directory: later edits are checked as they come.
    let first = match DirSource::new(dir.clone()).reload() {
        Outcome::Loaded(snapshot) => snapshot,
        Outcome::Failed(err) => {
            eprintln!("llmesh-local: {err}");
            return ExitCode::from(2);
        }
        Outcome::Unchanged | Outcome::SameVersion => {
            eprintln!("llmesh-local: {}: no manifests loaded", dir.display());
            return ExitCode::from(2);
        }
    };
    let sidecar = match Sidecar::bind(settings).await {
        Ok(sidecar) => sidecar,
        Err(err) => {
            eprintln!("llmesh-local: {err}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        api = %sidecar.api_addr(), admin = %sidecar.admin_addr(),
        models = first.models.len(), dir = %dir.display(),
        "serving the OpenAI API from local manifests; try: curl {}/v1/models",
        sidecar.api_addr()
    );
    let (tx, rx) = tokio::sync::watch::channel(Some(Arc::clone(&first)));
    tokio::spawn(watch_dir(dir, POLL, tx));
    sidecar.serve(rx, shutdown_signal()).await;
    ExitCode::SUCCESS
}

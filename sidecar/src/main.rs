//! `llmesh-sidecar`: runs the data plane, with its config streamed from the operator
//! (in a pod) or read from a compiled snapshot file.
//!
//! Flags and variables: [`cli::SIDECAR`] (`llmesh-sidecar --help`).
//! To run from the Kubernetes manifests themselves, use `llmesh-local`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use llmesh_sidecar::config::link::Link;
use llmesh_sidecar::config::operator::{self, OperatorSource};
use llmesh_sidecar::meter::remote::OperatorAuthority;
use llmesh_sidecar::{Sidecar, cli, config, shutdown_signal};

fn main() -> ExitCode {
    let spec = &cli::SIDECAR;
    let (values, settings) = match cli::serve_from_process(spec) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    let threads = match cli::worker_threads(&values) {
        Ok(threads) => threads,
        Err(err) => return cli::usage_error(spec, &err),
    };
    // One thread (the default): every hand-off between tasks is a queue push, never a
    // wake-up of another thread; docs/benchmarks.md has the figures.
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    match builder.enable_all().build() {
        Ok(runtime) => runtime.block_on(run(spec, values, settings)),
        Err(err) => {
            eprintln!("llmesh-sidecar: cannot start the runtime: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Serves until a shutdown signal, with config from a file or the operator.
async fn run(
    spec: &cli::Spec,
    values: cli::Values,
    settings: llmesh_sidecar::Settings,
) -> ExitCode {
    let file = values.get("config").map(PathBuf::from);
    let operator_url = values.get("operator").map(str::to_owned);
    let (first, source) = match (file, operator_url) {
        (Some(path), None) => {
            // Fail fast on a bad file at start; later edits are checked as they come.
            match config::file::load(&path) {
                Ok(snapshot) => (Some(Arc::new(snapshot)), Source::File(path)),
                Err(err) => {
                    eprintln!("llmesh-sidecar: {err}");
                    return ExitCode::from(2);
                }
            }
        }
        (None, Some(url)) => {
            let source = OperatorSource {
                url,
                ca_file: PathBuf::from(
                    values
                        .get("operator-ca")
                        .unwrap_or(cli::DEFAULT_OPERATOR_CA),
                ),
                token_file: PathBuf::from(
                    values.get("token-file").unwrap_or(cli::DEFAULT_TOKEN_FILE),
                ),
            };
            (None, Source::Operator(source))
        }
        _ => {
            return cli::usage_error(spec, "give exactly one of --config or --operator");
        }
    };
    let mut sidecar = match Sidecar::bind(settings).await {
        Ok(sidecar) => sidecar,
        Err(err) => {
            eprintln!("llmesh-sidecar: {err}");
            return ExitCode::FAILURE;
        }
    };
    let (tx, rx) = tokio::sync::watch::channel(first);
    match source {
        Source::File(path) => {
            tokio::spawn(config::file::watch(path, Duration::from_secs(1), tx));
        }
        Source::Operator(source) => {
            let metrics = sidecar.metrics();
            let link = Arc::new(Link::with_metrics(
                metrics.operator_reachable.clone(),
                metrics.operator_last_success.clone(),
            ));
            sidecar = sidecar
                .report_to(Arc::new(OperatorAuthority::new(
                    source.clone(),
                    link.clone(),
                )))
                .watch_link(link.clone());
            let (connected_tx, mut connected_rx) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                while connected_rx.changed().await.is_ok() {
                    metrics
                        .config_connected
                        .set(i64::from(*connected_rx.borrow()));
                }
            });
            tokio::spawn(operator::run(source, tx, connected_tx, link));
        }
    }
    sidecar.serve(rx, shutdown_signal()).await;
    ExitCode::SUCCESS
}

enum Source {
    File(PathBuf),
    Operator(OperatorSource),
}

//! `llmesh-sidecar`: runs the data plane, with its config streamed from the operator
//! (in a pod) or read from a compiled snapshot file.
//!
//! ```text
//! llmesh-sidecar --operator https://llmesh-operator.llmesh-system.svc:8443 \
//!                [--operator-ca FILE] [--token-file FILE]
//! llmesh-sidecar --config snapshot.json
//!   common: [--listen 127.0.0.1:4000] [--admin-listen 0.0.0.0:4001] [--max-body-bytes N]
//!           [--log-format text|json] [--virtual-key NAME]
//! ```
//! To run from the Kubernetes manifests themselves, use `llmesh-local`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use llmesh_sidecar::config::link::Link;
use llmesh_sidecar::config::operator::{self, OperatorSource};
use llmesh_sidecar::meter::remote::OperatorAuthority;
use llmesh_sidecar::{Sidecar, cli, config, shutdown_signal, telemetry};

const USAGE: &str = "usage: llmesh-sidecar (--operator URL [--operator-ca FILE] [--token-file FILE] | --config FILE) [--listen ADDR] [--admin-listen ADDR] [--max-body-bytes N] [--log-format text|json] [--virtual-key NAME]";

/// Where the injected pod spec mounts the operator's CA and the projected token.
const DEFAULT_CA: &str = "/var/run/secrets/llmesh/ca.crt";
const DEFAULT_TOKEN: &str = "/var/run/secrets/llmesh/token";

#[tokio::main]
async fn main() -> ExitCode {
    let parsed = match cli::parse(
        std::env::args().skip(1),
        |k| std::env::var(k).ok(),
        &["config", "operator", "operator-ca", "token-file"],
    ) {
        Ok(parsed) => parsed,
        Err(err) => {
            eprintln!("llmesh-sidecar: {err}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(parsed.log_format);
    let file = parsed.extra.get("config").map(PathBuf::from);
    let operator_url = parsed.extra.get("operator").cloned();
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
                ca_file: parsed
                    .extra
                    .get("operator-ca")
                    .map_or_else(|| PathBuf::from(DEFAULT_CA), PathBuf::from),
                token_file: parsed
                    .extra
                    .get("token-file")
                    .map_or_else(|| PathBuf::from(DEFAULT_TOKEN), PathBuf::from),
            };
            (None, Source::Operator(source))
        }
        _ => {
            eprintln!("llmesh-sidecar: give exactly one of --config or --operator\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut sidecar = match Sidecar::bind(parsed.settings).await {
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

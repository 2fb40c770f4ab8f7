//! `llmesh-operator`: the control plane. Reconciles LLMModel, VirtualKey and Budget,
//! and streams each namespace's compiled config to its sidecars over TLS.
//!
//! Flags and variables: [`llmesh_operator::cli::OPERATOR`] (`llmesh-operator --help`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use llmesh_operator::intake::Intake;
use llmesh_operator::push::{self, Push, TlsSource, TokenReviewer};
use llmesh_operator::run::{self, Settings};
use llmesh_operator::settings::Process;
use llmesh_sidecar::telemetry::{self, LogFormat};

use llmesh_operator::cli::OPERATOR;
use llmesh_sidecar::cli;

struct Args {
    push: SocketAddr,
    admin: SocketAddr,
    tls: TlsSource,
    ca_out: Option<String>,
    log: LogFormat,
}

fn parse(values: &cli::Values, process: &Process) -> Result<Args, String> {
    let addr = |flag: &str, default: SocketAddr| {
        values
            .get(flag)
            .map_or(Ok(default), |v| cli::addr(&format!("--{flag}"), v))
    };
    let tls = match (values.get("tls-cert"), values.get("tls-key")) {
        (Some(cert), Some(key)) => TlsSource::Files {
            cert: cert.into(),
            key: key.into(),
        },
        (None, None) => {
            let namespace = &process.pod_namespace;
            let names = values
                .get("tls-names")
                .map(|n| n.split(',').map(|n| n.trim().to_owned()).collect())
                .unwrap_or_else(|| {
                    vec![
                        "llmesh-operator".to_owned(),
                        format!("llmesh-operator.{namespace}.svc"),
                        format!("llmesh-operator.{namespace}.svc.cluster.local"),
                        "localhost".to_owned(),
                    ]
                });
            TlsSource::SelfSigned(names)
        }
        _ => return Err("--tls-cert and --tls-key go together".into()),
    };
    Ok(Args {
        push: addr("push-listen", SocketAddr::from(([0, 0, 0, 0], 8443)))?,
        admin: addr("admin-listen", SocketAddr::from(([0, 0, 0, 0], 8080)))?,
        tls,
        ca_out: values.get("ca-out").map(str::to_owned),
        log: cli::log_format(values.get("log-format"))?,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let values = match cli::from_process(&OPERATOR) {
        Ok(values) => values,
        Err(code) => return code,
    };
    let process = Process::from_env();
    let mut args = match parse(&values, &process) {
        Ok(args) => args,
        Err(err) => return cli::usage_error(&OPERATOR, &err),
    };
    telemetry::init(args.log);
    let client = match kube::Client::try_default().await {
        Ok(client) => client,
        Err(err) => {
            eprintln!("llmesh-operator: cannot configure a Kubernetes client: {err}");
            return ExitCode::FAILURE;
        }
    };
    // The injection webhook (operator/src/webhook/), when the chart turns it on: its
    // certificate also serves the push, so every replica serves one CA.
    let webhook = match llmesh_operator::webhook::prepare(&client).await {
        Ok(webhook) => webhook,
        Err(err) => {
            eprintln!("llmesh-operator: {err}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(tls) = webhook.as_ref().and_then(|w| w.push_tls(&args.tls)) {
        args.tls = tls;
    }
    // Without the webhook's pair or files, the CA is kept in a Secret across restarts.
    args.tls = match llmesh_operator::webhook::certs::keep_push_tls(&client, args.tls).await {
        Ok(tls) => tls,
        Err(err) => {
            eprintln!("llmesh-operator: {err}");
            return ExitCode::FAILURE;
        }
    };
    let (tls, ca_pem) = match push::tls_config(&args.tls) {
        Ok(pair) => pair,
        Err(err) => {
            eprintln!("llmesh-operator: {err}");
            return ExitCode::FAILURE;
        }
    };
    // Self-managed certificates are renewed in place: the push serves the current one.
    let tls = webhook
        .as_ref()
        .and_then(|w| w.push_server_config())
        .unwrap_or(tls);
    if let Some(path) = &args.ca_out
        && let Err(err) = std::fs::write(path, &ca_pem)
    {
        eprintln!("llmesh-operator: cannot write {path}: {err}");
        return ExitCode::FAILURE;
    }
    let settings = Settings {
        instance: process.pod_name.clone(),
        namespace: process.watch_namespace.clone(),
    };
    let shutdown = async { llmesh_sidecar::shutdown_signal().await };
    let shared_shutdown = futures_util::FutureExt::shared(Box::pin(shutdown));
    let operator = match run::start(client.clone(), &settings, shared_shutdown.clone()).await {
        Ok(operator) => operator,
        Err(err) => {
            eprintln!("llmesh-operator: {err}");
            return ExitCode::FAILURE;
        }
    };
    tokio::spawn(llmesh_operator::budget_metrics::export(
        client.clone(),
        operator.ctx.metrics.clone(),
        settings.namespace.clone(),
    ));
    if let Some(webhook) = webhook {
        let run = webhook.run(
            client.clone(),
            operator.ctx.metrics.clone(),
            shared_shutdown.clone(),
        );
        tokio::spawn(async move {
            if let Err(err) = run.await {
                tracing::error!(error = %err, "the injection webhook stopped");
            }
        });
    }
    let ready = Arc::new(AtomicBool::new(false));
    let (push_listener, admin_listener) = match (
        tokio::net::TcpListener::bind(args.push).await,
        tokio::net::TcpListener::bind(args.admin).await,
    ) {
        (Ok(p), Ok(a)) => (p, a),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("llmesh-operator: cannot listen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let admin = tokio::spawn(llmesh_operator::admin::serve(
        admin_listener,
        operator.ctx.metrics.clone(),
        ready.clone(),
        shared_shutdown.clone(),
    ));
    let hub = operator.ctx.hub.clone();
    tokio::spawn({
        let ready = ready.clone();
        async move {
            hub.ready().await;
            ready.store(true, Ordering::Relaxed);
        }
    });
    let push = Arc::new(
        Push::new(
            operator.ctx.hub.clone(),
            Arc::new(TokenReviewer::new(client).allow_unbound(process.allow_unbound_tokens)),
            operator.ctx.metrics.clone(),
        )
        .with_intake(Arc::new(Intake::new(operator.ctx.clone()))),
    );
    tracing::info!(push = %args.push, admin = %args.admin, "llmesh operator running");
    push::serve(push_listener, tls, push, shared_shutdown).await;
    // The admin server stopped on the same signal; `/metrics` stays up until it has.
    let _ = admin.await;
    ExitCode::SUCCESS
}

//! `llmesh-operator`: the control plane. Reconciles LLMModel, VirtualKey and Budget,
//! and streams each namespace's compiled config to its sidecars over TLS.
//!
//! ```text
//! llmesh-operator [--push-listen 0.0.0.0:8443] [--admin-listen 0.0.0.0:8080]
//!                 [--tls-cert FILE --tls-key FILE | --tls-names a,b,c] [--ca-out FILE]
//!                 [--log-format text|json]
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use llmesh_operator::intake::Intake;
use llmesh_operator::push::{self, Push, TlsSource, TokenReviewer};
use llmesh_operator::run::{self, Settings};
use llmesh_sidecar::telemetry::{self, LogFormat};

const USAGE: &str = "usage: llmesh-operator [--push-listen ADDR] [--admin-listen ADDR] [--tls-cert FILE --tls-key FILE | --tls-names NAMES] [--ca-out FILE] [--log-format text|json]";

struct Args {
    push: SocketAddr,
    admin: SocketAddr,
    tls: TlsSource,
    ca_out: Option<String>,
    log: LogFormat,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        push: SocketAddr::from(([0, 0, 0, 0], 8443)),
        admin: SocketAddr::from(([0, 0, 0, 0], 8080)),
        tls: TlsSource::SelfSigned(Vec::new()),
        ca_out: None,
        log: LogFormat::Text,
    };
    let (mut cert, mut key, mut names) = (None, None, None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--push-listen" => {
                args.push = value()?
                    .parse()
                    .map_err(|_| "--push-listen: not an address".to_owned())?
            }
            "--admin-listen" => {
                args.admin = value()?
                    .parse()
                    .map_err(|_| "--admin-listen: not an address".to_owned())?
            }
            "--tls-cert" => cert = Some(value()?),
            "--tls-key" => key = Some(value()?),
            "--tls-names" => names = Some(value()?),
            "--ca-out" => args.ca_out = Some(value()?),
            "--log-format" => {
                args.log = match value()?.as_str() {
                    "json" => LogFormat::Json,
                    "text" => LogFormat::Text,
                    other => return Err(format!("--log-format: {other:?} is not text or json")),
                }
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    args.tls = match (cert, key) {
        (Some(cert), Some(key)) => TlsSource::Files {
            cert: cert.into(),
            key: key.into(),
        },
        (None, None) => {
            let namespace =
                std::env::var("POD_NAMESPACE").unwrap_or_else(|_| "llmesh-system".into());
            let names = names
                .map(|n| n.split(',').map(str::to_owned).collect())
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
    Ok(args)
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = match parse() {
        Ok(args) => args,
        Err(err) => {
            eprintln!("llmesh-operator: {err}\n{USAGE}");
            return ExitCode::from(2);
        }
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
        instance: std::env::var("POD_NAME").ok(),
        namespace: std::env::var("LLMESH_WATCH_NAMESPACE")
            .ok()
            .filter(|n| !n.is_empty()),
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
    tokio::spawn(llmesh_operator::admin::serve(
        admin_listener,
        operator.ctx.metrics.clone(),
        ready.clone(),
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
            Arc::new(TokenReviewer::new(client)),
            operator.ctx.metrics.clone(),
        )
        .with_intake(Arc::new(Intake::new(operator.ctx.clone()))),
    );
    tracing::info!(push = %args.push, admin = %args.admin, "llmesh operator running");
    push::serve(push_listener, tls, push, shared_shutdown).await;
    ExitCode::SUCCESS
}

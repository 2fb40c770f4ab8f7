//! The chart's Grafana dashboard (`charts/llmesh/dashboards/llmesh.json`) against the
//! real binaries: an `llmesh-operator` process and an `llmesh-sidecar` process it feeds
//! ([`fleet`]), driven through the calls that make every family the dashboard reads
//! have samples (a served call, a stream, a retry, a cooldown and a fallback, a key's
//! limit refusing a call, usage folded into a Budget, a change pushed to a connected
//! sidecar). Both `/metrics` are then read, and every query of the dashboard, panels and
//! variables alike, is checked by `llmesh_tests::promql`: each metric exported, each label
//! it names on the series it applies to, counters rated and histograms read by bucket.
//!
//! Both binaries list every registered family even before its first sample
//! (`llmesh_sidecar::exposition`), so a name the binaries do not register is told apart
//! from one that only saw no traffic; the labels, which only samples carry, are read
//! from the families that have them, and a query naming a label of a family without
//! samples fails, so this test has to drive the traffic for it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fleet;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use fleet::{Fleet, eventually, http_get, key, secret_of};
use kube::api::PostParams;
use llmesh_crds::llm_model::{CacheSpec, Cooldown, ModelDeployment, Provider, RetryPolicy};
use llmesh_crds::shared::HumanDuration;
use llmesh_crds::{Budget, LlmModel, VirtualKey};
use llmesh_tests::dashboard::{self, QueryKind};
use llmesh_tests::promql::{self, Catalog};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The target labels Prometheus adds to each sidecar's series: the chart's PodMonitor
/// (`metrics.podMonitor`) scrapes every injected pod, so `namespace` is the app's.
const SIDECAR_SCRAPE_LABELS: &[&str] = &[
    "namespace",
    "pod",
    "container",
    "endpoint",
    "job",
    "instance",
];

/// The target labels on the operator's series, from the chart's ServiceMonitor. Its
/// `namespace` would be the operator's own: the monitor honours the operator's labels
/// (`honorLabels`), so `namespace` means the resource's namespace, and only on the
/// families that export one; filtering the others by an app namespace would hide them.
const OPERATOR_SCRAPE_LABELS: &[&str] =
    &["pod", "container", "endpoint", "job", "instance", "service"];

#[test]
fn the_dashboard_imports_and_every_query_parses() {
    let board = dashboard::load().unwrap();
    let problems = dashboard::structure_problems(&board);
    assert!(
        problems.is_empty(),
        "{}:\n{}",
        dashboard::FILE,
        problems.join("\n")
    );
    let queries = dashboard::queries(&board).unwrap();
    let mut names = BTreeSet::new();
    for q in &queries {
        let text = match &q.kind {
            QueryKind::Expr(e) => e,
            QueryKind::LabelValues { series, .. } => series,
        };
        let expr = promql::parse(text).unwrap_or_else(|e| panic!("{}: {e}: {text}", q.place));
        names.extend(promql::metric_names(&expr));
    }
    println!(
        "{} queries over {} metrics: {names:?}",
        queries.len(),
        names.len()
    );
}

/// Every query of the dashboard names metrics and labels the binaries export.
#[tokio::test]
async fn every_dashboard_query_names_what_the_binaries_export() {
    let limited = VirtualKey::test("limited").with_limits(1, 1_000_000, 4);
    let Some(fleet) = Fleet::with_keys(
        "dash",
        Budget::test("team", "100.00", ["app"]),
        key().with_team("search"),
        vec![limited],
    )
    .await
    else {
        return;
    };
    let sidecar = fleet.sidecar().await;

    // A model whose only deployment always answers 500: one retry, the second failure
    // rests the deployment, then the call falls back to `chat`. Created now, with the
    // sidecar connected, so the operator times a change's push.
    let mut flaky = LlmModel::test("flaky")
        .with_deployments([ModelDeployment::new(
            "down",
            Provider::OpenaiCompatible,
            "mock-error-500",
        )
        .with_base_url(&fleet.mock.base_url())
        .with_secret("upstream", "apiKey")])
        .with_fallbacks(["chat"]);
    flaky.spec.retry = Some(RetryPolicy {
        server_error: Some(1),
        initial_backoff: Some(HumanDuration::new("10ms")),
        max_backoff: Some(HumanDuration::new("10ms")),
        ..RetryPolicy::default()
    });
    flaky.spec.cooldown = Some(Cooldown {
        allowed_fails: Some(1),
        ..Cooldown::default()
    });
    // Its cache misses (a fallback's answer is not kept) give the cache panels samples.
    flaky.spec.cache = Some(CacheSpec {
        ttl: Some(HumanDuration::new("1m")),
        ..CacheSpec::default()
    });
    flaky.metadata.namespace = Some(fleet.env.namespace.clone());
    fleet
        .env
        .api::<LlmModel>()
        .create(&PostParams::default(), &flaky)
        .await
        .unwrap();
    let api = sidecar.api;
    eventually(
        "a call to flaky served by its fallback",
        60,
        || async move {
            let (status, _) = call(api, fleet::KEY, &chat_body("flaky", false)).await?;
            (status == 200).then_some(())
        },
    )
    .await;

    let (status, body) = call(api, fleet::KEY, &chat_body("chat", true))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("data: [DONE]"), "a stream: {body}");

    // The key allows one request a minute: the second is refused.
    let limited_key = secret_of("limited");
    let first = call(api, &limited_key, &chat_body("chat", false))
        .await
        .unwrap();
    assert_eq!(first.0, 200, "{}", first.1);
    let second = call(api, &limited_key, &chat_body("chat", false))
        .await
        .unwrap();
    assert_eq!(second.0, 429, "{}", second.1);

    // Usage reaches the operator's ledger asynchronously (the sidecar reports each second).
    let admin = fleet.operator_admin;
    let operator_text = eventually(
        "the operator's spend, push and usage samples",
        60,
        || async move {
            let (_, text) = http_get(admin, "/metrics").await?;
            [
                "llmesh_operator_budget_spend_micros_total{",
                "llmesh_operator_push_latency_seconds_bucket{",
                "llmesh_operator_usage_reports_total{",
                "llmesh_operator_budget_remaining_micros{",
            ]
            .iter()
            .all(|s| text.contains(s))
            .then_some(text)
        },
    )
    .await;
    let (_, sidecar_text) = sidecar.admin_get("/metrics").await.unwrap();

    let mut catalog = Catalog::default();
    catalog
        .add("llmesh-sidecar", &sidecar_text, SIDECAR_SCRAPE_LABELS)
        .unwrap();
    catalog
        .add("llmesh-operator", &operator_text, OPERATOR_SCRAPE_LABELS)
        .unwrap();

    let board = dashboard::load().unwrap();
    let queries = dashboard::queries(&board).unwrap();
    let problems = dashboard::query_problems(&queries, &catalog);
    assert!(
        problems.is_empty(),
        "{} queries of {} do not resolve:\n{}\nfamilies without samples: {:?}",
        problems.len(),
        dashboard::FILE,
        problems.join("\n"),
        catalog.unsampled().collect::<Vec<_>>()
    );

    // The same catalog refuses what no binary exports, and labels a family lacks.
    for (bad, needle) in [
        ("sum(rate(llmesh_cache_made_up_total[5m]))", "not exported"),
        (
            "sum by (team) (rate(llmesh_requests_total[5m]))",
            "does not have",
        ),
        (
            "sum by (namespace) (llmesh_operator_connected_sidecars)",
            "does not have",
        ),
    ] {
        let problems = promql::check(&promql::parse(bad).unwrap(), &catalog);
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "{bad}: {problems:?}"
        );
    }

    let used: BTreeSet<String> = queries
        .iter()
        .filter_map(|q| match &q.kind {
            QueryKind::Expr(e) => promql::parse(e).ok(),
            QueryKind::LabelValues { series, .. } => promql::parse(series).ok(),
        })
        .flat_map(|e| promql::metric_names(&e))
        .map(|n| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .fold(n, |n, s| n.strip_suffix(s).map_or(n.clone(), str::to_owned))
        })
        .collect();
    let unused: Vec<&str> = catalog.names().filter(|n| !used.contains(*n)).collect();
    println!(
        "{} queries checked; {} families used; exported but not on the dashboard: {unused:?}",
        queries.len(),
        used.len()
    );
}

/// A chat completion request for `model`.
fn chat_body(model: &str, stream: bool) -> String {
    serde_json::json!({
        "model": model,
        "stream": stream,
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hello"}],
    })
    .to_string()
}

/// POSTs `body` to the sidecar's chat completions with `key`: status and whole body
/// (a stream's events as sent), `None` when it cannot be reached in 20 s.
async fn call(api: SocketAddr, key: &str, body: &str) -> Option<(u16, String)> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(api).await.ok()?;
        let request = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).await.ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        Some((head.split(' ').nth(1)?.parse().ok()?, body.to_owned()))
    };
    tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .ok()?
}

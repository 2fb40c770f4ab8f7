//! Prometheus metrics of the data plane, in a registry of their own (no globals), served
//! by the admin server's `/metrics`.

use prometheus::core::Collector;
use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
};

use crate::exposition::Registry;
use crate::router::routes::Routes;

/// Latency buckets from 1 ms to 5 minutes: LLM calls span that whole range.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// Buckets for the proxy's own overhead, 10 µs to 100 ms.
const OVERHEAD_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.1,
];

/// `gen_ai.client.token.usage` buckets, as the OpenTelemetry GenAI conventions advise.
const TOKEN_BUCKETS: &[f64] = &[
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];

/// `gen_ai.client.operation.duration` buckets, as the conventions advise.
const OPERATION_BUCKETS: &[f64] = &[
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];

/// Every data-plane metric.
pub struct Metrics {
    registry: Registry,
    /// The OpenTelemetry GenAI metrics, named as the conventions' Prometheus export
    /// names them (no `llmesh_` prefix).
    genai: Registry,
    /// `gen_ai.client.token.usage`: tokens per call, by operation, provider, model asked
    /// for and token type (`input`, `output`).
    pub genai_tokens: HistogramVec,
    /// `gen_ai.client.operation.duration`: whole-call duration, by operation, provider,
    /// model asked for and error type (empty on success).
    pub genai_duration: HistogramVec,
    /// Requests answered, by model, deployment, provider and HTTP status.
    pub requests: IntCounterVec,
    /// Whole-request duration (to the end of the body), by model and endpoint.
    pub request_duration: HistogramVec,
    /// Time to the first streamed event reaching the client, by model.
    pub time_to_first_token: HistogramVec,
    /// One attempt's wait for the upstream (headers, or first event for streams).
    pub upstream_latency: HistogramVec,
    /// Retries, by model, deployment and failure class.
    pub retries: IntCounterVec,
    /// Fallbacks taken, by source model, target model and kind.
    pub fallbacks: IntCounterVec,
    /// Times a deployment entered cooldown.
    pub cooldowns: IntCounterVec,
    /// 1 while a deployment is cooling down (refreshed on scrape).
    pub in_cooldown: IntGaugeVec,
    /// Client requests in flight.
    pub in_flight: IntGauge,
    /// Time the proxy itself spent on a request, upstream waits and backoff excluded.
    pub overhead: HistogramVec,
    /// Request parameters dropped because the provider cannot honour them.
    pub dropped_params: IntCounterVec,
    /// Image URLs fetched for providers that take images as bytes, by model and
    /// result (a fixed list: see `router::images`).
    pub image_fetches: IntCounterVec,
    /// Bytes of the images fetched, by model.
    pub image_fetch_bytes: IntCounterVec,
    /// 1 for the config version in use.
    pub config_info: IntGaugeVec,
    /// Config loads by result (`ok`, `error`).
    pub config_reloads: IntCounterVec,
    /// 1 while a config stream from the operator is open.
    pub config_connected: IntGauge,
    /// Tokens metered, by key, team, model and kind (prompt, completion, cached, reasoning).
    pub tokens: IntCounterVec,
    /// Spend metered in micro-dollars, by key, team and model.
    pub spend: IntCounterVec,
    /// Calls refused by a key's limits or a budget, by key and reason.
    pub refusals: IntCounterVec,
    /// Usage records not yet acknowledged by the operator.
    pub usage_unacknowledged: IntGauge,
    /// Micro-dollars reserved from budgets by calls not yet settled (a detached call's
    /// included): 0 when the sidecar is idle, else a reservation leaked.
    pub budget_reserved: IntGauge,
    /// 1 when the last exchange with the operator on a channel (`config`, `usage`)
    /// worked, 0 when it failed; absent before the first.
    pub operator_reachable: IntGaugeVec,
    /// When a channel to the operator last worked, Unix seconds.
    pub operator_last_success: GaugeVec,
    /// Calls to models with a response cache, by model and what the cache did (`hit`,
    /// `miss`, `refresh`, `bypass`: see `cache::Outcome`).
    pub cache_requests: IntCounterVec,
    /// What cache hits saved: the cost, micro-dollars, of the calls whose answers they
    /// served, by key, team and model.
    pub cache_saved: IntCounterVec,
    /// Answers held by a model's cache (refreshed on scrape).
    pub cache_entries: IntGaugeVec,
    /// Bytes held by a model's cache (refreshed on scrape).
    pub cache_bytes: IntGaugeVec,
}

/// Registers `metric` with `registry`, handing it back.
fn register<M: Collector + Clone + 'static>(
    registry: &Registry,
    metric: M,
) -> Result<M, prometheus::Error> {
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new("llmesh")?;
        let counter = |name: &str, help: &str, labels: &[&str]| {
            register(
                &registry,
                IntCounterVec::new(Opts::new(name, help), labels)?,
            )
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: &[f64]| {
            let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
            register(&registry, HistogramVec::new(opts, labels)?)
        };
        let gauge = |name: &str, help: &str| register(&registry, IntGauge::new(name, help)?);
        let gauges = |name: &str, help: &str, labels: &[&str]| {
            register(&registry, IntGaugeVec::new(Opts::new(name, help), labels)?)
        };
        let genai = Registry::unprefixed();
        let genai_histogram = |name: &str, help: &str, labels: &[&str], buckets: &[f64]| {
            let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
            register(&genai, HistogramVec::new(opts, labels)?)
        };
        let genai_tokens = genai_histogram(
            "gen_ai_client_token_usage",
            "Tokens used per call (OpenTelemetry gen_ai.client.token.usage).",
            &[
                "gen_ai_operation_name",
                "gen_ai_provider_name",
                "gen_ai_request_model",
                "gen_ai_token_type",
            ],
            TOKEN_BUCKETS,
        )?;
        let genai_duration = genai_histogram(
            "gen_ai_client_operation_duration_seconds",
            "Whole-call duration (OpenTelemetry gen_ai.client.operation.duration).",
            &[
                "gen_ai_operation_name",
                "gen_ai_provider_name",
                "gen_ai_request_model",
                "error_type",
            ],
            OPERATION_BUCKETS,
        )?;
        let requests = counter(
            "requests_total",
            "Requests answered, by endpoint, model, deployment, provider and status.",
            &["endpoint", "model", "deployment", "provider", "status"],
        )?;
        let request_duration = histogram(
            "request_duration_seconds",
            "Whole request duration, to the end of the response body.",
            &["model", "endpoint"],
            LATENCY_BUCKETS,
        )?;
        let time_to_first_token = histogram(
            "time_to_first_token_seconds",
            "Time until the first streamed event was ready for the client.",
            &["model"],
            LATENCY_BUCKETS,
        )?;
        let upstream_latency = histogram(
            "upstream_latency_seconds",
            "One attempt's wait for the upstream: headers, or the first event of a stream.",
            &["provider", "deployment"],
            LATENCY_BUCKETS,
        )?;
        let retries = counter(
            "retries_total",
            "Retries, by model, deployment and failure class.",
            &["model", "deployment", "reason"],
        )?;
        let fallbacks = counter(
            "fallbacks_total",
            "Fallbacks to another model, by source, target and kind.",
            &["from", "to", "kind"],
        )?;
        let cooldowns = counter(
            "cooldowns_total",
            "Times a deployment entered cooldown.",
            &["model", "deployment"],
        )?;
        let in_cooldown = gauges(
            "deployment_in_cooldown",
            "1 while the deployment is cooling down.",
            &["model", "deployment"],
        )?;
        let in_flight = gauge("requests_in_flight", "Client requests in flight.")?;
        let overhead = histogram(
            "proxy_overhead_seconds",
            "Time spent in the proxy itself, upstream waits and backoff excluded.",
            &["endpoint"],
            OVERHEAD_BUCKETS,
        )?;
        let dropped_params = counter(
            "dropped_params_total",
            "Request parameters dropped because the provider cannot honour them.",
            &["model", "provider", "param"],
        )?;
        let image_fetches = counter(
            "image_fetches_total",
            "Image URLs fetched for providers that take images as bytes, by model and result.",
            &["model", "result"],
        )?;
        let image_fetch_bytes = counter(
            "image_fetch_bytes_total",
            "Bytes of the images fetched for providers that take images as bytes, by model.",
            &["model"],
        )?;
        let config_info = gauges(
            "config_info",
            "1 for the config version in use.",
            &["version"],
        )?;
        let config_reloads = counter(
            "config_reloads_total",
            "Config loads by result.",
            &["result"],
        )?;
        let config_connected = gauge(
            "config_connected",
            "1 while a config stream from the operator is open.",
        )?;
        let tokens = counter(
            "tokens_total",
            "Tokens metered, by key, team, model and kind.",
            &["key", "team", "model", "kind"],
        )?;
        let spend = counter(
            "spend_micros_total",
            "Spend metered in micro-dollars, by key, team and model.",
            &["key", "team", "model"],
        )?;
        let refusals = counter(
            "refusals_total",
            "Calls refused by a key's limits or a budget, by key and reason.",
            &["key", "reason"],
        )?;
        let usage_unacknowledged = gauge(
            "usage_unacknowledged_records",
            "Usage records not yet acknowledged by the operator.",
        )?;
        let budget_reserved = gauge(
            "budget_reserved_micros",
            "Micro-dollars reserved from budgets by calls not yet settled.",
        )?;
        let operator_reachable = gauges(
            "operator_reachable",
            "1 when the last exchange with the operator on the channel (config, usage) worked, 0 when it failed.",
            &["channel"],
        )?;
        let operator_last_success = register(
            &registry,
            GaugeVec::new(
                Opts::new(
                    "operator_last_success_timestamp_seconds",
                    "When the channel to the operator (config, usage) last worked, Unix seconds.",
                ),
                &["channel"],
            )?,
        )?;
        let cache_requests = counter(
            "cache_requests_total",
            "Calls to models with a response cache, by model and result (hit, miss, refresh, bypass).",
            &["model", "result"],
        )?;
        let cache_saved = counter(
            "cache_saved_micros_total",
            "Spend saved by response cache hits, micro-dollars, by key, team and model.",
            &["key", "team", "model"],
        )?;
        let cache_entries = gauges(
            "cache_entries",
            "Answers held in a model's response cache.",
            &["model"],
        )?;
        let cache_bytes = gauges(
            "cache_bytes",
            "Bytes held in a model's response cache.",
            &["model"],
        )?;
        Ok(Metrics {
            cache_requests,
            cache_saved,
            cache_entries,
            cache_bytes,
            operator_reachable,
            operator_last_success,
            config_connected,
            tokens,
            spend,
            refusals,
            usage_unacknowledged,
            budget_reserved,
            registry,
            genai,
            genai_tokens,
            genai_duration,
            requests,
            request_duration,
            time_to_first_token,
            upstream_latency,
            retries,
            fallbacks,
            cooldowns,
            in_cooldown,
            in_flight,
            overhead,
            dropped_params,
            image_fetches,
            image_fetch_bytes,
            config_info,
            config_reloads,
        })
    }

    /// Marks `version` as the config in use.
    pub fn set_config_version(&self, version: &str) {
        self.config_info.reset();
        self.config_info.with_label_values(&[version]).set(1);
    }

    /// Renders the text exposition (every family, those without samples too: see
    /// [`crate::exposition`]), refreshing the cooldown and cache gauges from `routes`.
    pub fn render(&self, routes: Option<&Routes>) -> Vec<u8> {
        if let Some(routes) = routes {
            self.in_cooldown.reset();
            self.cache_entries.reset();
            self.cache_bytes.reset();
            let now = tokio::time::Instant::now();
            for model in routes.models() {
                if let Some(cache) = &model.cache {
                    let (entries, bytes) = cache.size();
                    let name = [model.name.as_str()];
                    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
                    self.cache_entries
                        .with_label_values(&name)
                        .set(count(entries as u64));
                    self.cache_bytes.with_label_values(&name).set(count(bytes));
                }
                for d in &model.deployments {
                    let resting = i64::from(d.state.is_resting(now));
                    self.in_cooldown
                        .with_label_values(&[model.name.as_str(), d.name.as_str()])
                        .set(resting);
                }
            }
        }
        let mut out = self.registry.render();
        out.extend(self.genai.render());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prefixed_metrics() {
        let m = Metrics::new().unwrap();
        m.requests
            .with_label_values(&["chat_completions", "chat", "a", "openai", "200"])
            .inc();
        m.set_config_version("abc");
        m.set_config_version("def");
        let text = String::from_utf8(m.render(None)).unwrap();
        assert!(text.contains(
            r#"llmesh_requests_total{deployment="a",endpoint="chat_completions",model="chat",provider="openai",status="200"} 1"#
        ));
        assert!(text.contains(r#"llmesh_config_info{version="def"} 1"#));
        assert!(!text.contains(r#"version="abc""#));
        // Listed before their first sample.
        assert!(text.contains("# TYPE llmesh_fallbacks_total counter\n"));
        assert!(text.contains("# TYPE llmesh_time_to_first_token_seconds histogram\n"));
    }
}

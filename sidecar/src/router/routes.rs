//! The routing table: the validated, ready-to-use form of a [`Snapshot`]. Built once per
//! config change; requests only read it. Deployment state lives outside the table and is
//! carried over to the next one, so a reload keeps cooldowns, latency averages and
//! minute counters; so do the upstream clients ([`Transports`]), so it keeps pooled
//! connections, those of deployments whose `tls` adds CAs included.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::cache::{Caches, Store};
use crate::config::snapshot::{
    CooldownSpec, FORMAT, ModelSpec, Pricing, ProviderKind, RetrySpec, Snapshot, Strategy, TlsSpec,
    WorkloadIdentity,
};
use crate::meter::keys::{Key, KeyTable, limits_of};
use crate::meter::limiter::KeyLimiter;
use crate::provider::demo::DemoTransport;
use crate::provider::{Credential, Dialect, ProviderContext};
use crate::router::images::ImagePolicy;
use crate::router::state::DeploymentState;
use crate::upstream::Transport;
use crate::upstream::fetch::{GuardedDialer, ImageFetcher, SystemLookup};
use crate::upstream::tls::{Trust, parse_pem};
use crate::upstream::transports::Transports;

/// The longest timeout, backoff or cooldown a snapshot may set (a week). Longer values
/// are clamped here, at the boundary, so the request path can add any of them to an
/// `Instant` without overflow.
const LONGEST_WAIT_MS: u64 = 7 * 24 * 3600 * 1000;

/// The validated config requests are served from.
pub struct Routes {
    /// The snapshot's version.
    pub version: String,
    /// Virtual keys.
    pub keys: KeyTable,
    /// Budgets, sorted by name.
    pub budgets: Vec<BudgetRule>,
    models: HashMap<String, Arc<Model>>,
    /// Model names, sorted, for `/v1/models`.
    names: Vec<String>,
    /// Fetches image URLs for providers that take images as bytes.
    pub fetcher: Arc<ImageFetcher>,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes")
            .field("version", &self.version)
            .field("models", &self.names)
            .finish()
    }
}

/// One logical model.
pub struct Model {
    /// The name clients send.
    pub name: String,
    /// Deployment selection strategy.
    pub strategy: Strategy,
    /// Where it is served; never empty.
    pub deployments: Vec<Deployment>,
    /// Models tried on 429/5xx/timeout/connect failures, in order.
    pub fallbacks: Vec<String>,
    /// Models tried when the prompt exceeds the context window.
    pub context_window_fallbacks: Vec<String>,
    /// Models tried when the content is refused on policy grounds.
    pub content_policy_fallbacks: Vec<String>,
    /// Retry counts and backoff.
    pub retry: RetrySpec,
    /// Whole-request time limit.
    pub total_timeout: Duration,
    /// Per-attempt limit until headers and, for streams, the first event.
    pub ttft_timeout: Duration,
    /// Cooldown policy.
    pub cooldown: CooldownSpec,
    /// Drop parameters a provider cannot honour instead of refusing the request.
    pub drop_unsupported_params: bool,
    /// Record prompts and completions on the calls' spans.
    pub capture_content: bool,
    /// `max_tokens` for providers that require one.
    pub default_max_tokens: Option<u32>,
    /// The dearest input and output prices among the deployments: what a call is
    /// reserved at, wherever it lands.
    pub dearest: Pricing,
    /// How image URLs are fetched for deployments whose provider takes only bytes.
    pub image_fetch: Arc<ImagePolicy>,
    /// The model's response cache, when it has one; carried across reloads.
    pub cache: Option<Arc<Store>>,
}

/// One deployment of a model.
pub struct Deployment {
    /// Unique within the model.
    pub name: String,
    /// Provider kind.
    pub provider: ProviderKind,
    /// Provider label for metrics.
    pub provider_label: &'static str,
    /// The upstream model id written into the request body.
    pub upstream_model: String,
    /// Translation between OpenAI's API and the provider's.
    pub dialect: Arc<dyn Dialect>,
    /// Authentication of upstream requests.
    pub credential: Credential,
    /// Weighted-shuffle weight, at least 1.
    pub weight: u32,
    /// Requests-per-minute limit.
    pub rpm: Option<u32>,
    /// Tokens-per-minute limit.
    pub tpm: Option<u64>,
    /// Effective prices (deployment override or the model's).
    pub pricing: Pricing,
    /// Live state shared across requests and reloads.
    pub state: Arc<DeploymentState>,
    /// How requests reach it.
    pub transport: Arc<dyn Transport>,
}

/// A budget as requests use it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetRule {
    /// The Budget's name.
    pub name: String,
    /// Limit per period, micro-dollars.
    pub limit_micros: u64,
    /// Keys it applies to.
    pub keys: Vec<String>,
    /// Models it applies to.
    pub models: Vec<String>,
    /// The model serving calls once it is exhausted; `None` refuses them.
    pub downgrade_to: Option<String>,
}

impl BudgetRule {
    /// Whether a call by `key` to `model` spends from this budget.
    pub fn applies(&self, key: Option<&Key>, model: &str) -> bool {
        self.models.iter().any(|m| m == model)
            || key.is_some_and(|k| self.keys.contains(&k.name) || k.budgets.contains(&self.name))
    }
}

/// Why a snapshot was refused.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct InvalidConfig {
    /// Where in the snapshot, e.g. `models[chat].deployments[a].baseUrl`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl Routes {
    /// Looks up a model by the name a client sent.
    pub fn model(&self, name: &str) -> Option<&Arc<Model>> {
        self.models.get(name)
    }

    /// Every model name, sorted.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Every model.
    pub fn models(&self) -> impl Iterator<Item = &Arc<Model>> {
        self.models.values()
    }

    /// The budgets a call by `key` to `model` spends from.
    pub fn budgets_for(&self, key: Option<&Key>, model: &str) -> Vec<&BudgetRule> {
        self.budgets
            .iter()
            .filter(|b| b.applies(key, model))
            .collect()
    }
}

impl Model {
    /// The fallback list for a failure kind.
    pub fn fallbacks_for(&self, kind: crate::router::retry::FallbackKind) -> &[String] {
        use crate::router::retry::FallbackKind;
        match kind {
            FallbackKind::General => &self.fallbacks,
            FallbackKind::ContextWindow => &self.context_window_fallbacks,
            FallbackKind::ContentPolicy => &self.content_policy_fallbacks,
        }
    }
}

type StateKey = (String, String, ProviderKind, String);

/// Builds [`Routes`] from snapshots, carrying deployment state and upstream clients
/// from one to the next.
pub struct RoutesBuilder {
    providers: ProviderContext,
    demo: Arc<dyn Transport>,
    transports: Arc<Transports>,
    states: Mutex<HashMap<StateKey, Arc<DeploymentState>>>,
    limiters: Mutex<HashMap<String, Arc<KeyLimiter>>>,
    /// Each model's response cache, carried across reloads.
    caches: Caches,
    fetcher: Arc<ImageFetcher>,
}

impl RoutesBuilder {
    /// A builder sending HTTP deployments through `http` (but those whose `tls` adds CAs,
    /// which get real clients trusting them), fetching images through the system resolver
    /// and the network, reading the cloud identity variables from the process.
    pub fn new(http: Arc<dyn Transport>) -> Self {
        Self::with_env(http, Arc::new(crate::provider::identity::ProcessEnv))
    }

    /// As [`new`](Self::new), reading the cloud identity variables from `env` (tests
    /// give their own).
    pub fn with_env(
        http: Arc<dyn Transport>,
        env: Arc<dyn crate::provider::identity::Env>,
    ) -> Self {
        let transports = Arc::new(Transports::with_default(http, Trust::default()));
        Self::with_transports_and_env(transports, env)
    }

    /// A builder taking each deployment's client from `transports`.
    pub fn with_transports(transports: Arc<Transports>) -> Self {
        Self::with_transports_and_env(transports, Arc::new(crate::provider::identity::ProcessEnv))
    }

    fn with_transports_and_env(
        transports: Arc<Transports>,
        env: Arc<dyn crate::provider::identity::Env>,
    ) -> Self {
        let fetcher = ImageFetcher::new(Arc::new(
            GuardedDialer::new(Arc::new(SystemLookup)).trusting(transports.clone()),
        ));
        RoutesBuilder {
            providers: ProviderContext::with_env(transports.default_transport(), env),
            demo: Arc::new(DemoTransport),
            transports,
            states: Mutex::new(HashMap::new()),
            limiters: Mutex::new(HashMap::new()),
            caches: Caches::default(),
            fetcher: Arc::new(fetcher),
        }
    }

    /// Fetches image URLs through `fetcher` instead (tests resolve names their own way).
    pub fn with_image_fetcher(mut self, fetcher: ImageFetcher) -> Self {
        self.fetcher = Arc::new(fetcher);
        self
    }

    /// The upstream clients, whose sidecar-wide trust may change between builds.
    pub fn transports(&self) -> &Arc<Transports> {
        &self.transports
    }

    /// Learns what building `snapshot` needs from the pod's environment and is not in
    /// it: the Google Cloud project of `vertex` deployments on GKE Workload Identity
    /// that name none, from the metadata server (once per sidecar). Says what it could
    /// not learn; [`build`](Self::build) then refuses those deployments.
    pub async fn discover(&self, snapshot: &Snapshot) -> Result<(), String> {
        let needs_project = snapshot
            .models
            .iter()
            .flat_map(|m| &m.deployments)
            .any(|d| {
                d.provider == ProviderKind::Vertex
                    && d.project.is_none()
                    && d.workload_identity == Some(WorkloadIdentity::GcpMetadata)
            });
        if needs_project {
            let ctx = &self.providers;
            ctx.gcp_project
                .discover(&*ctx.env, &*ctx.http)
                .await
                .map(drop)?;
        }
        Ok(())
    }

    /// Validates a snapshot and builds its routing table.
    pub fn build(&self, snapshot: &Snapshot) -> Result<Routes, InvalidConfig> {
        if snapshot.format != FORMAT {
            return Err(invalid(
                "format",
                format!(
                    "snapshot format {} is not supported (expected {FORMAT})",
                    snapshot.format
                ),
            ));
        }
        let names: HashSet<&str> = snapshot.models.iter().map(|m| m.name.as_str()).collect();
        if names.len() != snapshot.models.len() {
            return Err(invalid("models", "model names must be unique"));
        }
        let mut previous = self
            .states
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut states = HashMap::new();
        let mut models = HashMap::with_capacity(snapshot.models.len());
        let mut caches = self.caches.rebuild();
        self.transports.begin();
        for spec in &snapshot.models {
            let mut model = self.model(spec, &names, &mut previous, &mut states)?;
            model.cache = caches.model(spec).map_err(|(field, message)| {
                invalid(&format!("models[{}].cache.{field}", spec.name), message)
            })?;
            models.insert(spec.name.clone(), Arc::new(model));
        }
        // Only deployments still configured keep their state, and their clients.
        *previous = states;
        let mut sorted: Vec<String> = models.keys().cloned().collect();
        sorted.sort();
        let budgets: Vec<BudgetRule> = snapshot
            .budgets
            .iter()
            .map(|b| BudgetRule {
                name: b.name.clone(),
                limit_micros: b.limit_micros,
                keys: b.keys.clone(),
                models: b.models.clone(),
                downgrade_to: b.downgrade_to.clone(),
            })
            .collect();
        for b in &budgets {
            if let Some(to) = &b.downgrade_to
                && !models.contains_key(to)
            {
                return Err(invalid(
                    &format!("budgets[{}].downgradeTo", b.name),
                    format!("unknown model {to:?}"),
                ));
            }
        }
        self.transports.sweep();
        caches.commit();
        Ok(Routes {
            version: snapshot.version.clone(),
            keys: self.keys(snapshot),
            budgets,
            models,
            names: sorted,
            fetcher: self.fetcher.clone(),
        })
    }

    /// The key table, each key keeping its limiter from the last snapshot.
    fn keys(&self, snapshot: &Snapshot) -> KeyTable {
        let mut previous = self
            .limiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = tokio::time::Instant::now();
        let mut limiters = HashMap::new();
        let mut keys = Vec::with_capacity(snapshot.keys.len());
        for spec in &snapshot.keys {
            let limits = limits_of(spec);
            let limiter = match previous.remove(&spec.name) {
                Some(l) => {
                    l.configure(limits, now);
                    l
                }
                None => Arc::new(KeyLimiter::new(limits, now)),
            };
            limiters.insert(spec.name.clone(), limiter.clone());
            keys.extend(Key::from_spec(spec, limiter).map(|mut key| {
                // Fail closed: spend nobody can check is refused (the key's status says so).
                key.missing_budget = key
                    .budgets
                    .iter()
                    .find(|b| !snapshot.budgets.iter().any(|s| &s.name == *b))
                    .cloned();
                key
            }));
        }
        *previous = limiters;
        KeyTable::new(keys, !snapshot.keys.is_empty())
    }

    fn model(
        &self,
        spec: &ModelSpec,
        names: &HashSet<&str>,
        previous: &mut HashMap<StateKey, Arc<DeploymentState>>,
        states: &mut HashMap<StateKey, Arc<DeploymentState>>,
    ) -> Result<Model, InvalidConfig> {
        let at = |field: &str| format!("models[{}].{field}", spec.name);
        if spec.name.is_empty() {
            return Err(invalid("models[].name", "must not be empty"));
        }
        if spec.deployments.is_empty() {
            return Err(invalid(
                &at("deployments"),
                "at least one deployment is required",
            ));
        }
        for (field, list) in [
            ("fallbacks", &spec.fallbacks),
            ("contextWindowFallbacks", &spec.context_window_fallbacks),
            ("contentPolicyFallbacks", &spec.content_policy_fallbacks),
        ] {
            for name in list {
                if name == &spec.name {
                    return Err(invalid(&at(field), "a model cannot fall back to itself"));
                }
                if !names.contains(name.as_str()) {
                    return Err(invalid(&at(field), format!("unknown model {name:?}")));
                }
            }
        }
        if spec.timeouts.total_ms == 0 || spec.timeouts.time_to_first_token_ms == 0 {
            return Err(invalid(&at("timeouts"), "timeouts must be positive"));
        }
        let image_fetch = ImagePolicy::from_spec(&spec.image_fetch)
            .map_err(|(field, message)| invalid(&at(&format!("imageFetch.{field}")), message))?;
        let mut seen = HashSet::new();
        let mut deployments = Vec::with_capacity(spec.deployments.len());
        for d in &spec.deployments {
            let dat =
                |field: &str| format!("models[{}].deployments[{}].{field}", spec.name, d.name);
            if !seen.insert(d.name.as_str()) {
                return Err(invalid(&dat("name"), "deployment names must be unique"));
            }
            if d.weight == 0 {
                return Err(invalid(&dat("weight"), "weight must be at least 1"));
            }
            let prepared = crate::provider::build(d, &self.providers)
                .map_err(|e| invalid(&dat("provider"), e.to_string()))?;
            let key = (
                spec.name.clone(),
                d.name.clone(),
                d.provider,
                format!("{}|{}", d.base_url.as_deref().unwrap_or(""), d.model),
            );
            let state = previous.remove(&key).unwrap_or_default();
            states.insert(key, state.clone());
            let transport = match (d.provider, &d.tls) {
                (ProviderKind::Demo, _) => self.demo.clone(),
                (_, None) => self.transports.default_transport(),
                (_, Some(tls)) => {
                    let trust = deployment_trust(tls).map_err(|e| invalid(&dat("tls"), e))?;
                    self.transports
                        .get(&trust)
                        .map_err(|e| invalid(&dat("tls"), e.to_string()))?
                }
            };
            deployments.push(Deployment {
                name: d.name.clone(),
                provider: d.provider,
                provider_label: provider_label(d.provider),
                upstream_model: d.model.clone(),
                dialect: prepared.dialect,
                credential: prepared.credential,
                weight: d.weight,
                rpm: d.rpm,
                tpm: d.tpm,
                pricing: d.pricing.unwrap_or(spec.pricing),
                state,
                transport,
            });
        }
        let dearest = deployments
            .iter()
            .fold(Pricing::default(), |acc, d| Pricing {
                input_micros_per_million: acc
                    .input_micros_per_million
                    .max(d.pricing.input_micros_per_million),
                output_micros_per_million: acc
                    .output_micros_per_million
                    .max(d.pricing.output_micros_per_million),
                cached_input_micros_per_million: 0,
                cache_write_input_micros_per_million: 0,
            });
        Ok(Model {
            name: spec.name.clone(),
            strategy: spec.strategy,
            deployments,
            fallbacks: spec.fallbacks.clone(),
            context_window_fallbacks: spec.context_window_fallbacks.clone(),
            content_policy_fallbacks: spec.content_policy_fallbacks.clone(),
            retry: RetrySpec {
                initial_backoff_ms: spec.retry.initial_backoff_ms.min(LONGEST_WAIT_MS),
                max_backoff_ms: spec.retry.max_backoff_ms.min(LONGEST_WAIT_MS),
                ..spec.retry
            },
            total_timeout: Duration::from_millis(spec.timeouts.total_ms.min(LONGEST_WAIT_MS)),
            ttft_timeout: Duration::from_millis(
                spec.timeouts.time_to_first_token_ms.min(LONGEST_WAIT_MS),
            ),
            cooldown: CooldownSpec {
                window_ms: spec.cooldown.window_ms.min(LONGEST_WAIT_MS),
                duration_ms: spec.cooldown.duration_ms.min(LONGEST_WAIT_MS),
                ..spec.cooldown
            },
            drop_unsupported_params: spec.drop_unsupported_params,
            default_max_tokens: spec.default_max_tokens,
            dearest,
            image_fetch: Arc::new(image_fetch),
            capture_content: spec.capture_content,
            cache: None,
        })
    }
}

/// What a deployment's `tls` adds to the sidecar's trust.
fn deployment_trust(tls: &TlsSpec) -> Result<Trust, String> {
    let mut trust = Trust {
        extra: Vec::new(),
        system_roots: tls.system_roots,
    };
    for (i, pem) in tls.ca_certificates.iter().enumerate() {
        let certs = parse_pem(pem.as_bytes()).map_err(|e| format!("caCertificates[{i}] {e}"))?;
        trust = trust.with(&Trust {
            extra: certs,
            system_roots: false,
        });
    }
    Ok(trust)
}

/// The provider's name as used in config and metrics.
pub fn provider_label(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Openai => "openai",
        ProviderKind::Azure => "azure",
        ProviderKind::Ollama => "ollama",
        ProviderKind::Vllm => "vllm",
        ProviderKind::Groq => "groq",
        ProviderKind::Mistral => "mistral",
        ProviderKind::Deepseek => "deepseek",
        ProviderKind::Together => "together",
        ProviderKind::Fireworks => "fireworks",
        ProviderKind::Openrouter => "openrouter",
        ProviderKind::Perplexity => "perplexity",
        ProviderKind::OpenaiCompatible => "openai-compatible",
        ProviderKind::Demo => "demo",
        ProviderKind::Anthropic => "anthropic",
        ProviderKind::Gemini => "gemini",
        ProviderKind::Vertex => "vertex",
        ProviderKind::Bedrock => "bedrock",
        ProviderKind::Cohere => "cohere",
    }
}

fn invalid(path: &str, message: impl Into<String>) -> InvalidConfig {
    InvalidConfig {
        path: path.to_owned(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::snapshot::DeploymentSpec;

    pub(crate) fn snapshot(models: Vec<ModelSpec>) -> Snapshot {
        Snapshot {
            format: FORMAT,
            version: "test".into(),
            models,
            keys: vec![],
            budgets: vec![],
        }
    }

    fn model(name: &str, deployments: &[&str]) -> ModelSpec {
        ModelSpec {
            name: name.into(),
            strategy: Strategy::default(),
            deployments: deployments
                .iter()
                .map(|d| DeploymentSpec {
                    name: (*d).into(),
                    ..crate::provider::spec(ProviderKind::Demo)
                })
                .collect(),
            fallbacks: vec![],
            context_window_fallbacks: vec![],
            content_policy_fallbacks: vec![],
            retry: RetrySpec::default(),
            timeouts: Default::default(),
            cooldown: Default::default(),
            pricing: Default::default(),
            drop_unsupported_params: false,
            default_max_tokens: None,
            image_fetch: Default::default(),
            capture_content: false,
            cache: None,
        }
    }

    fn builder() -> RoutesBuilder {
        RoutesBuilder::new(Arc::new(DemoTransport))
    }

    #[test]
    fn builds_and_sorts_models() {
        let routes = builder()
            .build(&snapshot(vec![model("b", &["x"]), model("a", &["y"])]))
            .unwrap();
        assert_eq!(routes.names(), ["a", "b"]);
        assert_eq!(routes.model("a").unwrap().deployments[0].name, "y");
        assert!(routes.model("c").is_none());
    }

    #[test]
    fn refuses_invalid_snapshots_naming_the_field() {
        let b = builder();
        let mut bad = model("a", &["x", "x"]);
        let err = b.build(&snapshot(vec![bad.clone()])).unwrap_err();
        assert_eq!(err.path, "models[a].deployments[x].name");
        bad = model("a", &[]);
        assert!(b.build(&snapshot(vec![bad])).is_err());
        let mut selfish = model("a", &["x"]);
        selfish.fallbacks = vec!["a".into()];
        assert!(b.build(&snapshot(vec![selfish])).is_err());
        let mut dangling = model("a", &["x"]);
        dangling.context_window_fallbacks = vec!["zzz".into()];
        let err = b.build(&snapshot(vec![dangling])).unwrap_err();
        assert!(err.to_string().contains("zzz"), "{err}");
        let mut wrong_format = snapshot(vec![]);
        wrong_format.format = 99;
        assert!(b.build(&wrong_format).is_err());
    }

    /// A deployment of a self-hosted server at `https://vllm.internal`, with `tls`.
    fn self_hosted(name: &str, tls: Option<TlsSpec>) -> DeploymentSpec {
        DeploymentSpec {
            base_url: Some("https://vllm.internal/v1".into()),
            tls,
            ..DeploymentSpec::new(name, ProviderKind::Vllm, "llama")
        }
    }

    use crate::upstream::tls::test_ca_pem as ca_pem;

    #[test]
    fn deployments_adding_cas_get_a_client_trusting_them_kept_across_reloads() {
        let b = builder();
        let tls = |pems: Vec<String>| {
            Some(TlsSpec {
                ca_certificates: pems,
                system_roots: false,
            })
        };
        let (a, other) = (ca_pem("a"), ca_pem("other"));
        let mut m = model("m", &[]);
        m.deployments = vec![
            self_hosted("plain", None),
            self_hosted("one", tls(vec![a.clone()])),
            self_hosted("same", tls(vec![a.clone()])),
            self_hosted("other", tls(vec![other])),
        ];
        let first = b.build(&snapshot(vec![m.clone()])).unwrap();
        let d = &first.model("m").unwrap().deployments;
        assert!(Arc::ptr_eq(
            &d[0].transport,
            &b.transports().default_transport()
        ));
        assert!(!Arc::ptr_eq(&d[1].transport, &d[0].transport));
        assert!(Arc::ptr_eq(&d[1].transport, &d[2].transport), "shared");
        assert!(!Arc::ptr_eq(&d[1].transport, &d[3].transport));
        // A reload keeping `a` keeps its client (and its pooled connections).
        m.deployments.truncate(2);
        let second = b.build(&snapshot(vec![m.clone()])).unwrap();
        assert!(Arc::ptr_eq(
            &second.model("m").unwrap().deployments[1].transport,
            &d[1].transport
        ));
        assert_eq!(b.transports().own_clients(), 1);
        // A CA the sidecar cannot use refuses the snapshot, naming the field.
        m.deployments[1].tls = tls(vec!["not a certificate".into()]);
        let err = b.build(&snapshot(vec![m])).unwrap_err();
        assert_eq!(err.path, "models[m].deployments[one].tls");
        assert!(err.message.contains("caCertificates[0]"), "{err}");
    }

    #[test]
    fn deployment_state_survives_reloads_but_not_removal() {
        let b = builder();
        let first = b.build(&snapshot(vec![model("a", &["x", "y"])])).unwrap();
        let x1 = first.model("a").unwrap().deployments[0].state.clone();
        let second = b.build(&snapshot(vec![model("a", &["x"])])).unwrap();
        assert!(Arc::ptr_eq(
            &x1,
            &second.model("a").unwrap().deployments[0].state
        ));
        let y1 = first.model("a").unwrap().deployments[1].state.clone();
        let third = b.build(&snapshot(vec![model("a", &["x", "y"])])).unwrap();
        assert!(!Arc::ptr_eq(
            &y1,
            &third.model("a").unwrap().deployments[1].state
        ));
    }
}

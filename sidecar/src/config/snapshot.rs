//! The config snapshot: the sidecar's own, versioned wire format for its whole config.
//!
//! The operator (or the local runner) compiles `LLMModel`, `VirtualKey` and `Budget`
//! resources plus their Secrets into one `Snapshot` and hands it to the sidecar. It is
//! plain serde data with everything resolved (no references left to follow), so the
//! sidecar never needs Kubernetes types. The data path never sees it directly: it is
//! validated and converted into [`crate::config::Routes`] at the boundary.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The snapshot format this sidecar understands. Bumped on incompatible changes.
pub const FORMAT: u32 = 1;

/// The whole config of one sidecar, as compiled for its namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Snapshot {
    /// Wire format version; must equal [`FORMAT`].
    pub format: u32,
    /// Content version: equal snapshots have equal versions (a hash of the content).
    pub version: String,
    /// Logical models clients can name in `model`, sorted by name.
    #[serde(default)]
    pub models: Vec<ModelSpec>,
    /// Virtual keys (hashes only), sorted by name. Enforced by the metering layer.
    #[serde(default)]
    pub keys: Vec<KeySpec>,
    /// Budgets, sorted by name. Enforced by the metering layer.
    #[serde(default)]
    pub budgets: Vec<BudgetSpec>,
}

/// One logical model and how to serve it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelSpec {
    /// The name clients send as `model`.
    pub name: String,
    /// How a deployment is chosen for each attempt.
    #[serde(default)]
    pub strategy: Strategy,
    /// Where the model is served; at least one.
    pub deployments: Vec<DeploymentSpec>,
    /// Models tried in order once this one's retries are exhausted on 429/5xx/timeout.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// Models tried in order when the upstream says the prompt exceeds its context window.
    #[serde(default)]
    pub context_window_fallbacks: Vec<String>,
    /// Models tried in order when the upstream refuses the content on policy grounds.
    #[serde(default)]
    pub content_policy_fallbacks: Vec<String>,
    /// Retries per error class and their backoff.
    #[serde(default)]
    pub retry: RetrySpec,
    /// Request time limits.
    #[serde(default)]
    pub timeouts: TimeoutSpec,
    /// When a failing deployment is rested.
    #[serde(default)]
    pub cooldown: CooldownSpec,
    /// Prices, used by the lowest-cost strategy and by metering.
    #[serde(default)]
    pub pricing: Pricing,
    /// Drop request parameters the provider cannot honour instead of refusing them.
    #[serde(default)]
    pub drop_unsupported_params: bool,
    /// `max_tokens` sent to providers that require one when the client gives none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_max_tokens: Option<u32>,
    /// Fetching image URLs for providers that take images only as bytes. Left out of
    /// the snapshot when it is the default, so older sidecars still read it.
    #[serde(default, skip_serializing_if = "ImageFetchSpec::is_default")]
    pub image_fetch: ImageFetchSpec,
    /// Record prompts and completions on the calls' spans (`LLMModel`
    /// `spec.telemetry.captureContent`). Left out when off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub capture_content: bool,
    /// The model's response cache (see `crate::cache`); none when unset. Left out of
    /// the snapshot when unset, so older sidecars still read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheSpec>,
}

impl ModelSpec {
    /// A model with these deployments and every default.
    pub fn new(name: impl Into<String>, deployments: Vec<DeploymentSpec>) -> Self {
        ModelSpec {
            name: name.into(),
            strategy: Strategy::default(),
            deployments,
            fallbacks: Vec::new(),
            context_window_fallbacks: Vec::new(),
            content_policy_fallbacks: Vec::new(),
            retry: RetrySpec::default(),
            timeouts: TimeoutSpec::default(),
            cooldown: CooldownSpec::default(),
            pricing: Pricing::default(),
            drop_unsupported_params: false,
            default_max_tokens: None,
            image_fetch: ImageFetchSpec::default(),
            capture_content: false,
            cache: None,
        }
    }
}

/// A model's response cache: how long answers are served, and the memory they may take
/// in each sidecar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CacheSpec {
    /// How long an answer is served after it was stored; 1 ms to [`CacheSpec::MAX_TTL_MS`].
    pub ttl_ms: u64,
    /// Most answers kept; 1 to [`CacheSpec::MAX_ENTRIES`].
    #[serde(default = "CacheSpec::default_max_entries")]
    pub max_entries: u32,
    /// Most bytes of answers kept; [`CacheSpec::MIN_BYTES`] to [`CacheSpec::MAX_BYTES`].
    #[serde(default = "CacheSpec::default_max_bytes")]
    pub max_bytes: u64,
    /// Largest answer kept; 1 to `max_bytes` and [`CacheSpec::MAX_ENTRY_BYTES`].
    #[serde(default = "CacheSpec::default_max_entry_bytes")]
    pub max_entry_bytes: u64,
}

impl CacheSpec {
    /// The longest `ttl_ms`: a week.
    pub const MAX_TTL_MS: u64 = 7 * 24 * 3600 * 1000;
    /// The smallest `max_bytes`: 1 KiB.
    pub const MIN_BYTES: u64 = 1 << 10;
    /// The largest `max_bytes`: 1 GiB.
    pub const MAX_BYTES: u64 = 1 << 30;
    /// The largest `max_entries`.
    pub const MAX_ENTRIES: u32 = 1_000_000;
    /// The largest `max_entry_bytes` (and at most `max_bytes`): 64 MiB.
    pub const MAX_ENTRY_BYTES: u64 = 64 << 20;
    /// The default `max_entries`.
    pub const DEFAULT_MAX_ENTRIES: u32 = 1024;
    /// The default `max_bytes`: 16 MiB.
    pub const DEFAULT_MAX_BYTES: u64 = 16 << 20;
    /// The default `max_entry_bytes` (or `max_bytes`, when smaller): 1 MiB.
    pub const DEFAULT_MAX_ENTRY_BYTES: u64 = 1 << 20;

    /// A cache serving answers for `ttl_ms`, with the default limits.
    pub fn new(ttl_ms: u64) -> Self {
        CacheSpec {
            ttl_ms,
            max_entries: Self::DEFAULT_MAX_ENTRIES,
            max_bytes: Self::DEFAULT_MAX_BYTES,
            max_entry_bytes: Self::DEFAULT_MAX_ENTRY_BYTES,
        }
    }

    fn default_max_entries() -> u32 {
        Self::DEFAULT_MAX_ENTRIES
    }

    fn default_max_bytes() -> u64 {
        Self::DEFAULT_MAX_BYTES
    }

    fn default_max_entry_bytes() -> u64 {
        Self::DEFAULT_MAX_ENTRY_BYTES
    }

    /// Checks the limits: the field at fault (its manifest name) and why. The operator
    /// compiles with this check, so what it accepts the sidecar accepts.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.ttl_ms == 0 || self.ttl_ms > Self::MAX_TTL_MS {
            return Err((
                "ttl",
                "ttl must be more than 0s and at most 168h".to_owned(),
            ));
        }
        if self.max_entries == 0 || self.max_entries > Self::MAX_ENTRIES {
            return Err((
                "maxEntries",
                format!("maxEntries must be between 1 and {}", Self::MAX_ENTRIES),
            ));
        }
        if self.max_bytes < Self::MIN_BYTES || self.max_bytes > Self::MAX_BYTES {
            return Err((
                "maxBytes",
                format!(
                    "maxBytes must be between {} and {}",
                    Self::MIN_BYTES,
                    Self::MAX_BYTES
                ),
            ));
        }
        let most = self.max_bytes.min(Self::MAX_ENTRY_BYTES);
        if self.max_entry_bytes == 0 || self.max_entry_bytes > most {
            return Err((
                "maxEntryBytes",
                format!("maxEntryBytes must be between 1 and {most} (maxBytes, at most 64 MiB)"),
            ));
        }
        Ok(())
    }
}

/// How the sidecar fetches `http(s)` image URLs for a model's providers that take images
/// only as bytes (Bedrock, the Gemini API): where from, how much and how long.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ImageFetchSpec {
    /// Fetch at all; when false, image URLs are refused as the provider would.
    pub enabled: bool,
    /// Hosts images may be fetched from (`images.example.com`, `*.cdn.example.com`,
    /// an IP address, each optionally with `:port`); empty means any public host.
    pub allowed_hosts: Vec<String>,
    /// Non-public address ranges (CIDR) that may be fetched from anyway, for an
    /// internal image server.
    pub allow_private_addresses: Vec<String>,
    /// Largest image fetched, in bytes.
    pub max_bytes: u64,
    /// Time limit for fetching all of one call's images.
    pub timeout_ms: u64,
    /// Most image URLs fetched for one call.
    pub max_images: u32,
}

impl Default for ImageFetchSpec {
    fn default() -> Self {
        ImageFetchSpec {
            enabled: true,
            allowed_hosts: Vec::new(),
            allow_private_addresses: Vec::new(),
            max_bytes: 20 * 1024 * 1024,
            timeout_ms: 10_000,
            max_images: 16,
        }
    }
}

impl ImageFetchSpec {
    /// Whether every field has its default.
    pub fn is_default(&self) -> bool {
        *self == ImageFetchSpec::default()
    }
}

/// Deployment selection strategy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Random choice weighted by each deployment's weight.
    #[default]
    WeightedShuffle,
    /// The deployment with the fewest requests in flight.
    LeastBusy,
    /// The deployment with the lowest moving average of upstream latency.
    LowestLatency,
    /// The deployment with the most rpm/tpm headroom left this minute.
    UsageBased,
    /// The cheapest deployment by price.
    LowestCost,
}

impl Strategy {
    /// The name used in config and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::WeightedShuffle => "weighted-shuffle",
            Strategy::LeastBusy => "least-busy",
            Strategy::LowestLatency => "lowest-latency",
            Strategy::UsageBased => "usage-based",
            Strategy::LowestCost => "lowest-cost",
        }
    }
}

/// The kinds of upstream provider the sidecar can call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// OpenAI's API.
    Openai,
    /// Azure OpenAI: deployment URLs, `api-version`, `api-key` header.
    Azure,
    /// Ollama's OpenAI-compatible API.
    Ollama,
    /// vLLM's OpenAI-compatible server.
    Vllm,
    /// Groq.
    Groq,
    /// Mistral AI.
    Mistral,
    /// DeepSeek.
    Deepseek,
    /// Together AI.
    Together,
    /// Fireworks AI.
    Fireworks,
    /// OpenRouter.
    Openrouter,
    /// Perplexity.
    Perplexity,
    /// Any other server speaking OpenAI's API; needs a base URL.
    OpenaiCompatible,
    /// Anthropic's Messages API.
    Anthropic,
    /// Google AI Studio (Gemini API), key auth.
    Gemini,
    /// Google Vertex AI, service-account auth.
    Vertex,
    /// AWS Bedrock Converse, SigV4 auth.
    Bedrock,
    /// Cohere v2.
    Cohere,
    /// A built-in fake provider answering in-process, for local trials only.
    Demo,
}

/// One place a model is served.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentSpec {
    /// Unique within its model; shown in `x-llmesh-deployment` and metrics.
    pub name: String,
    /// Which provider serves it.
    pub provider: ProviderKind,
    /// The provider's model id (for Azure, the deployment name).
    pub model: String,
    /// Overrides the provider's default base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The provider credential, resolved from its Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<SecretString>,
    /// Azure OpenAI `api-version` query parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Relative share of traffic under weighted shuffle; at least 1.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Requests per minute this deployment accepts; none means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u32>,
    /// Tokens per minute this deployment accepts; none means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    /// Overrides the model's prices for this deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<Pricing>,
    /// Cloud region (Bedrock) or location (Vertex AI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Cloud project (Vertex AI); defaults to the service account's project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// AWS credentials (Bedrock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsCredentials>,
    /// A Google service-account JSON key (Vertex AI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcp_service_account: Option<SecretString>,
    /// Overrides the OAuth2 token endpoint (Vertex AI), e.g. for tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    /// Authenticate with the pod's cloud identity instead of a key (see
    /// `provider::identity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_identity: Option<WorkloadIdentity>,
    /// What the deployment's TLS trusts beyond the web roots and the sidecar's own CAs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
}

/// A deployment's upstream TLS trust, its CAs resolved from their Secret or ConfigMap.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsSpec {
    /// PEM texts of CA certificates (each may be a bundle), trusted besides the web roots.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ca_certificates: Vec<String>,
    /// Also trust the sidecar's system CA store.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub system_roots: bool,
}

/// Where a deployment's credential comes from when no key is given: the cloud identity
/// of the pod's ServiceAccount, as the cloud's webhook or metadata server provides it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadIdentity {
    /// Bedrock: IRSA, a web-identity token exchanged at STS (`AssumeRoleWithWebIdentity`).
    AwsWebIdentity,
    /// Bedrock: EKS Pod Identity, credentials from the node's Pod Identity agent.
    AwsPodIdentity,
    /// Vertex AI: GKE Workload Identity, tokens from the metadata server.
    GcpMetadata,
    /// Vertex AI: workload identity federation, an `external_account` credential
    /// configuration.
    GcpExternalAccount,
    /// Azure OpenAI: Entra ID workload identity, a federated token exchanged for an
    /// Entra access token.
    AzureWorkloadIdentity,
}

impl WorkloadIdentity {
    /// The name used in config and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadIdentity::AwsWebIdentity => "aws-web-identity",
            WorkloadIdentity::AwsPodIdentity => "aws-pod-identity",
            WorkloadIdentity::GcpMetadata => "gcp-metadata",
            WorkloadIdentity::GcpExternalAccount => "gcp-external-account",
            WorkloadIdentity::AzureWorkloadIdentity => "azure-workload-identity",
        }
    }

    /// The provider this identity authenticates to.
    pub fn provider(self) -> ProviderKind {
        match self {
            WorkloadIdentity::AwsWebIdentity | WorkloadIdentity::AwsPodIdentity => {
                ProviderKind::Bedrock
            }
            WorkloadIdentity::GcpMetadata | WorkloadIdentity::GcpExternalAccount => {
                ProviderKind::Vertex
            }
            WorkloadIdentity::AzureWorkloadIdentity => ProviderKind::Azure,
        }
    }
}

/// AWS credentials, resolved from a Secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AwsCredentials {
    /// Access key id.
    pub access_key_id: SecretString,
    /// Secret access key.
    pub secret_access_key: SecretString,
    /// Session token of temporary credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<SecretString>,
}

impl AwsCredentials {
    /// Long-term credentials (no session token).
    pub fn new(access_key_id: &str, secret_access_key: &str) -> Self {
        AwsCredentials {
            access_key_id: SecretString::new(access_key_id),
            secret_access_key: SecretString::new(secret_access_key),
            session_token: None,
        }
    }
}

impl DeploymentSpec {
    /// A deployment with every default.
    pub fn new(name: impl Into<String>, provider: ProviderKind, model: impl Into<String>) -> Self {
        DeploymentSpec {
            name: name.into(),
            provider,
            model: model.into(),
            base_url: None,
            api_key: None,
            api_version: None,
            weight: 1,
            rpm: None,
            tpm: None,
            pricing: None,
            region: None,
            project: None,
            aws: None,
            gcp_service_account: None,
            token_url: None,
            tls: None,
            workload_identity: None,
        }
    }
}

fn default_weight() -> u32 {
    1
}

/// Prices in integer micro-dollars per million tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Pricing {
    /// Prompt tokens.
    pub input_micros_per_million: u64,
    /// Completion tokens.
    pub output_micros_per_million: u64,
    /// Prompt tokens served from the provider's cache; 0 means the input price.
    pub cached_input_micros_per_million: u64,
    /// Prompt tokens written to the provider's cache; 0 means the input price.
    pub cache_write_input_micros_per_million: u64,
}

/// Retry counts per error class, and the backoff between attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RetrySpec {
    /// Retries after a 429.
    pub rate_limited: u32,
    /// Retries after a 5xx.
    pub server_error: u32,
    /// Retries after a timeout.
    pub timeout: u32,
    /// Retries after a connection failure.
    pub connect_error: u32,
    /// Retries after a 400/401/403/404 and other 4xx (normally none).
    pub client_error: u32,
    /// First backoff; doubled each retry, with full jitter.
    pub initial_backoff_ms: u64,
    /// Cap on one backoff, and on how long a `Retry-After` is honoured.
    pub max_backoff_ms: u64,
}

impl Default for RetrySpec {
    fn default() -> Self {
        RetrySpec {
            rate_limited: 2,
            server_error: 2,
            timeout: 1,
            connect_error: 2,
            client_error: 0,
            initial_backoff_ms: 250,
            max_backoff_ms: 8_000,
        }
    }
}

/// Request time limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TimeoutSpec {
    /// Whole request, all attempts and fallbacks included, streams to their end.
    pub total_ms: u64,
    /// One attempt: until response headers and, for streams, the first chunk.
    pub time_to_first_token_ms: u64,
}

impl Default for TimeoutSpec {
    fn default() -> Self {
        TimeoutSpec {
            total_ms: 600_000,
            time_to_first_token_ms: 60_000,
        }
    }
}

/// When a deployment is rested: `allowed_fails` failures within `window_ms` rest it
/// for `duration_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CooldownSpec {
    /// Failures tolerated within the window; the next one starts the cooldown.
    pub allowed_fails: u32,
    /// The window failures are counted in.
    pub window_ms: u64,
    /// How long the deployment rests.
    pub duration_ms: u64,
}

impl Default for CooldownSpec {
    fn default() -> Self {
        CooldownSpec {
            allowed_fails: 3,
            window_ms: 60_000,
            duration_ms: 30_000,
        }
    }
}

/// A virtual key as the sidecar sees it: a hash, never the key itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeySpec {
    /// The VirtualKey's name.
    pub name: String,
    /// Lowercase hex SHA-256 of the key.
    pub sha256: String,
    /// The key's first characters, for display.
    pub display_prefix: String,
    /// Models the key may call; empty means all.
    #[serde(default)]
    pub models: Vec<String>,
    /// Requests per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u32>,
    /// Tokens per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    /// Requests in flight at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel_requests: Option<u32>,
    /// Expiry as Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_unix: Option<i64>,
    /// Team label for metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// User label for metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The Budget this key spends from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<String>,
}

/// A budget as the sidecar sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BudgetSpec {
    /// The Budget's name.
    pub name: String,
    /// Spend limit per period in micro-dollars.
    pub limit_micros: u64,
    /// Keys it applies to.
    #[serde(default)]
    pub keys: Vec<String>,
    /// Models it applies to.
    #[serde(default)]
    pub models: Vec<String>,
    /// The model to serve from once exhausted; none means reject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downgrade_to: Option<String>,
}

/// A secret value: serialized as-is, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        SecretString(value.into())
    }

    /// The secret itself; callers must not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_json_gets_defaults() {
        let snap: Snapshot = serde_json::from_str(
            r#"{"format":1,"version":"v","models":[{"name":"m","deployments":[
                {"name":"d","provider":"openai","model":"gpt-4o-mini"}]}]}"#,
        )
        .unwrap();
        let model = &snap.models[0];
        assert_eq!(model.strategy, Strategy::WeightedShuffle);
        assert_eq!(model.deployments[0].weight, 1);
        assert_eq!(model.retry, RetrySpec::default());
        assert_eq!(model.cooldown.allowed_fails, 3);
    }

    #[test]
    fn secrets_are_redacted_in_debug_but_kept_on_the_wire() {
        let key = SecretString::new("sk-live-123");
        assert!(!format!("{key:?}").contains("sk-live"));
        assert_eq!(serde_json::to_string(&key).unwrap(), "\"sk-live-123\"");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<Snapshot>(r#"{"format":1,"version":"v","modles":[]}"#)
            .unwrap_err();
        assert!(err.to_string().contains("modles"));
    }
}

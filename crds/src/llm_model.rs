//! `LLMModel`: one logical model name that clients send as `model`, and how to serve it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::shared::{
    ConfigMapKeyRef, DNS_LABEL_PATTERN, DNS_SUBDOMAIN_PATTERN, HumanDuration, SecretKeyRef,
    UsdAmount,
};

/// A logical model: the name clients send as `model`, served by one or more
/// deployments, with routing, retries, fallbacks, cooldown and prices.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
// Printer columns repeat `type_ = "string"`, which clippy mistakes for a duplicated
// attribute.
#[allow(clippy::duplicated_attributes)]
#[kube(
    group = "llmesh.io",
    version = "v1alpha1",
    kind = "LLMModel",
    root = "LlmModel",
    plural = "llmmodels",
    singular = "llmmodel",
    shortname = "llm",
    category = "llmesh",
    namespaced,
    status = "LlmModelStatus",
    derive = "PartialEq",
    doc = "A logical model that clients name in `model`, and the deployments that serve it.",
    validation = Rule::new(
        "!has(self.spec.fallbacks) || !(self.metadata.name in self.spec.fallbacks)"
    ).message("spec.fallbacks must not name the model itself").field_path(".spec.fallbacks"),
    validation = Rule::new(
        "!has(self.spec.contextWindowFallbacks) || !(self.metadata.name in self.spec.contextWindowFallbacks)"
    ).message("spec.contextWindowFallbacks must not name the model itself").field_path(".spec.contextWindowFallbacks"),
    validation = Rule::new(
        "!has(self.spec.contentPolicyFallbacks) || !(self.metadata.name in self.spec.contentPolicyFallbacks)"
    ).message("spec.contentPolicyFallbacks must not name the model itself").field_path(".spec.contentPolicyFallbacks"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Strategy", type_ = "string", json_path = ".spec.strategy"),
    printcolumn(name = "Deployments", type_ = "integer", json_path = ".status.deployments"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(name = "Summary", type_ = "string", json_path = ".status.summary", priority = 1),
    printcolumn(name = "Message", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].message", priority = 1)
)]
#[serde(rename_all = "camelCase")]
pub struct LlmModelSpec {
    /// How a deployment is chosen for each attempt. Default: `weighted-shuffle`.
    #[serde(default)]
    pub strategy: RoutingStrategy,

    /// Where the model is served: at least one deployment, names unique within the model.
    #[schemars(length(min = 1, max = 64))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    #[x_kube(validation = Rule::new("size(self) >= 1").message("at least one deployment is required"))]
    #[x_kube(validation = Rule::new("self.all(d, self.exists_one(e, e.name == d.name))").message("deployment names must be unique within the model"))]
    pub deployments: Vec<ModelDeployment>,

    /// LLMModels tried in order once this model's retries are exhausted on 429, 5xx or
    /// a timeout. Must not name this model. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN)))]
    pub fallbacks: Vec<String>,

    /// LLMModels tried in order when the upstream says the prompt exceeds its context
    /// window. Must not name this model. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN)))]
    pub context_window_fallbacks: Vec<String>,

    /// LLMModels tried in order when the upstream refuses the content on policy grounds.
    /// Must not name this model. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN)))]
    pub content_policy_fallbacks: Vec<String>,

    /// Retries per error class and the backoff between them. Unset fields take the
    /// defaults listed on each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,

    /// Request time limits. Unset fields take the defaults listed on each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,

    /// When a failing deployment is rested. Unset fields take the defaults listed on each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<Cooldown>,

    /// Prices in USD per million tokens, used for metering, budgets and the
    /// `lowest-cost` strategy. Default: all zero (usage is counted but costs nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<ModelPricing>,

    /// An exact-match response cache in each sidecar: a call repeating an earlier call
    /// of the same virtual key exactly (same API, model, messages, tools and parameters)
    /// is answered from memory, at no cost, for `ttl`. Off unless set; see docs/cache.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheSpec>,

    /// What the model's OpenTelemetry spans may carry beyond routing facts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<TelemetrySpec>,

    /// Drop request parameters a deployment's provider cannot honour (counted in
    /// `llmesh_dropped_params_total`) instead of refusing the request with a 400 that
    /// names the parameter. Default: false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drop_unsupported_params: bool,

    /// `max_tokens` sent to providers that require one (Anthropic) when the client sends
    /// none. Default: 4096.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub default_max_tokens: Option<u32>,

    /// How the sidecar fetches `http(s)` image URLs for deployments whose provider takes
    /// images only as bytes (`bedrock`, `gemini`; `vertex` for URLs without a known
    /// extension). Default: on, from any public host on the scheme's default port, with
    /// the limits listed on each field; loopback, private, link-local and metadata
    /// addresses are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_fetch: Option<ImageFetch>,
}

/// Where image URLs may be fetched from, and how much. An image the policy refuses, or
/// that cannot be fetched, fails the call with a 400.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageFetch {
    /// Fetch image URLs at all; `false` refuses them with a 400, as the provider itself
    /// would. Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,

    /// The only hosts images are fetched from: `images.example.com`, `*.cdn.example.com`
    /// (any subdomain, not the domain itself), an IP address or `[IPv6 address]`, each
    /// optionally with `:port` (a URL with a port other than the scheme's default needs
    /// a rule naming it). Internal names (`localhost`, single-label names, `*.internal`,
    /// `*.svc`, `*.cluster.local`) are fetched only when a rule names them. Their
    /// addresses must still be public, or in `allowPrivateAddresses`. Default: any host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 260), regex(pattern = HOST_RULE_PATTERN)))]
    pub allowed_hosts: Vec<String>,

    /// Non-public address ranges images may still be fetched from, for an internal image
    /// server: CIDRs (`10.20.0.0/16`, `fd00:1::/64`) or single addresses. Cloud metadata
    /// addresses (`169.254.169.254`...) are refused even when listed. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 64)))]
    #[x_kube(validation = Rule::new("self.all(c, isCIDR(c) || isIP(c))").message("allowPrivateAddresses entries must be CIDR ranges or IP addresses"))]
    pub allow_private_addresses: Vec<String>,

    /// Largest image fetched, in bytes; at most 64 MiB. Default: 20971520 (20 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 67_108_864))]
    pub max_bytes: Option<u64>,

    /// Time limit for fetching all of one call's images, within the call's total
    /// timeout. Default: `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,

    /// Most image URLs fetched for one call. Default: 16.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 256))]
    pub max_images: Option<u32>,
}

/// An `allowedHosts` entry: a host name (or `*.` and a domain), an IPv4 address or a
/// bracketed IPv6 address, optionally with a port.
pub const HOST_RULE_PATTERN: &str =
    r"^((\*\.)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?|\[[0-9a-fA-F:.]+\])(:[0-9]{1,5})?$";

/// How a deployment is chosen for each attempt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RoutingStrategy {
    // Variant meanings live in the type's doc: per-variant docs would turn the schema's
    // plain `enum` into a `oneOf`, which structural schemas do not allow.
    #[default]
    WeightedShuffle,
    LeastBusy,
    LowestLatency,
    UsageBased,
    LowestCost,
}

/// The kind of upstream provider a deployment calls. `demo` is a built-in offline fake
/// for local trials only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    Openai,
    Azure,
    Ollama,
    Vllm,
    Groq,
    Mistral,
    Deepseek,
    Together,
    Fireworks,
    Openrouter,
    Perplexity,
    OpenaiCompatible,
    Demo,
    Anthropic,
    Gemini,
    Vertex,
    Bedrock,
    Cohere,
}

impl Provider {
    /// The name used in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Openai => "openai",
            Provider::Azure => "azure",
            Provider::Ollama => "ollama",
            Provider::Vllm => "vllm",
            Provider::Groq => "groq",
            Provider::Mistral => "mistral",
            Provider::Deepseek => "deepseek",
            Provider::Together => "together",
            Provider::Fireworks => "fireworks",
            Provider::Openrouter => "openrouter",
            Provider::Perplexity => "perplexity",
            Provider::OpenaiCompatible => "openai-compatible",
            Provider::Demo => "demo",
            Provider::Anthropic => "anthropic",
            Provider::Gemini => "gemini",
            Provider::Vertex => "vertex",
            Provider::Bedrock => "bedrock",
            Provider::Cohere => "cohere",
        }
    }

    /// Whether calls need no API key: local servers, the built-in fake, and the clouds
    /// that authenticate otherwise (checked by [`Provider::cloud_credentials`]).
    pub fn keyless(self) -> bool {
        matches!(
            self,
            Provider::Ollama
                | Provider::Vllm
                | Provider::Demo
                | Provider::OpenaiCompatible
                | Provider::Bedrock
                | Provider::Vertex
        )
    }

    /// Whether the provider needs `region` (Bedrock's region, Vertex AI's location).
    pub fn needs_region(self) -> bool {
        matches!(self, Provider::Bedrock | Provider::Vertex)
    }

    /// Whether the provider has no default endpoint, so `baseUrl` is required.
    pub fn needs_base_url(self) -> bool {
        matches!(self, Provider::Azure | Provider::OpenaiCompatible)
    }
}

/// One place the model is served.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(self.provider in ['azure', 'openai-compatible']) || has(self.baseUrl)").message("baseUrl is required for the azure and openai-compatible providers").field_path(".baseUrl"))]
#[x_kube(validation = Rule::new("!has(self.apiVersion) || self.provider in ['azure', 'anthropic']").message("apiVersion applies to the azure and anthropic providers only").field_path(".apiVersion"))]
#[x_kube(validation = Rule::new("has(self.apiKeySecretRef) || has(self.workloadIdentity) || self.provider in ['ollama', 'vllm', 'demo', 'openai-compatible'] || (self.provider == 'bedrock' && has(self.awsCredentialsSecretRef)) || (self.provider == 'vertex' && has(self.serviceAccountSecretRef))").message("apiKeySecretRef is required for hosted providers (bedrock: or awsCredentialsSecretRef; vertex: serviceAccountSecretRef; bedrock, vertex and azure: or workloadIdentity)").field_path(".apiKeySecretRef"))]
#[x_kube(validation = Rule::new("!has(self.workloadIdentity) || (self.provider == 'bedrock' && self.workloadIdentity in ['aws-web-identity', 'aws-pod-identity']) || (self.provider == 'vertex' && self.workloadIdentity in ['gcp-metadata', 'gcp-external-account']) || (self.provider == 'azure' && self.workloadIdentity == 'azure-workload-identity')").message("workloadIdentity must suit the provider: aws-web-identity or aws-pod-identity for bedrock, gcp-metadata or gcp-external-account for vertex, azure-workload-identity for azure").field_path(".workloadIdentity"))]
#[x_kube(validation = Rule::new("!has(self.workloadIdentity) || (!has(self.apiKeySecretRef) && !has(self.awsCredentialsSecretRef) && !has(self.tokenUrl) && (!has(self.serviceAccountSecretRef) || self.workloadIdentity == 'gcp-external-account'))").message("workloadIdentity replaces apiKeySecretRef, awsCredentialsSecretRef, tokenUrl and serviceAccountSecretRef (which, with gcp-external-account, may hold the credential configuration)").field_path(".workloadIdentity"))]
#[x_kube(validation = Rule::new("!has(self.workloadIdentity) || self.workloadIdentity != 'gcp-external-account' || has(self.project)").message("project is required with workloadIdentity gcp-external-account").field_path(".project"))]
#[x_kube(validation = Rule::new("!(self.provider in ['bedrock', 'vertex']) || has(self.region)").message("region is required for the bedrock and vertex providers").field_path(".region"))]
pub struct ModelDeployment {
    /// Unique within the model (a DNS label); shown in the `x-llmesh-deployment`
    /// response header and in metrics.
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS_LABEL_PATTERN))]
    pub name: String,

    /// Which provider serves it.
    pub provider: Provider,

    /// The provider's model id, e.g. `gpt-4o-mini`; for `azure`, the deployment name.
    #[schemars(length(min = 1, max = 256))]
    pub model: String,

    /// Overrides the provider's default endpoint; required for `azure` and
    /// `openai-compatible`. An `http` or `https` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new("isURL(self) && url(self).getScheme() in ['http', 'https']").message("must be an http or https URL"))]
    pub base_url: Option<String>,

    /// The Secret key holding the provider's API key. Required except for `ollama`,
    /// `vllm`, `openai-compatible` and `demo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_secret_ref: Option<SecretKeyRef>,

    /// Azure OpenAI's `api-version` query parameter (azure only). Default: the
    /// sidecar's pinned version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub api_version: Option<String>,

    /// Relative share of traffic under `weighted-shuffle`; at least 1. Default: 1.
    #[serde(default = "default_weight")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub weight: u32,

    /// Requests per minute this deployment accepts. Default: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub rpm: Option<u32>,

    /// Tokens per minute this deployment accepts. Default: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub tpm: Option<u64>,

    /// Overrides the model's prices for this deployment. Fields left unset take the
    /// model's price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<ModelPricing>,

    /// Cloud region (`bedrock`, e.g. `us-east-1`) or location (`vertex`, e.g.
    /// `us-central1` or `global`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = "^[a-z0-9-]+$"))]
    pub region: Option<String>,

    /// Google Cloud project (`vertex`). Default: the service account's project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub project: Option<String>,

    /// The Secret holding AWS credentials (`bedrock`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_credentials_secret_ref: Option<AwsCredentialsRef>,

    /// The Secret key holding a Google service-account JSON key (`vertex`); with
    /// `workloadIdentity: gcp-external-account`, a workload identity federation
    /// credential configuration (`"type": "external_account"`) instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_secret_ref: Option<SecretKeyRef>,

    /// Overrides the OAuth2 token endpoint (`vertex`). Default: the one named in the
    /// service-account key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new("isURL(self) && url(self).getScheme() in ['http', 'https']").message("must be an http or https URL"))]
    pub token_url: Option<String>,

    /// Authenticate with the cloud identity of the pod's ServiceAccount instead of a key
    /// Secret: `aws-web-identity` (IRSA) or `aws-pod-identity` (EKS Pod Identity) for
    /// `bedrock`, `gcp-metadata` (GKE Workload Identity) or `gcp-external-account`
    /// (workload identity federation) for `vertex`, `azure-workload-identity` (Entra
    /// Workload ID) for `azure`. The sidecar reads what the cloud's webhook or metadata
    /// server gives its pod; see docs/identity.md. Default: none (a key Secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_identity: Option<WorkloadIdentity>,
    /// What the deployment's TLS trusts besides the public web roots: a private CA
    /// (e.g. of a self-hosted vLLM behind internal TLS) and the system store. Default:
    /// the web roots and the sidecar's own `--ca-file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<UpstreamTls>,
}

/// Extra trust for a deployment's TLS. The CA text is PEM (one certificate or a bundle);
/// a Secret or ConfigMap key the operator cannot read, or whose text holds no usable
/// certificate, keeps the model from being served and is reported in its status.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.caSecretRef) || has(self.caConfigMapRef) || (has(self.systemRoots) && self.systemRoots)").message("tls needs caSecretRef, caConfigMapRef or systemRoots: true"))]
pub struct UpstreamTls {
    /// The Secret key holding PEM CA certificates, in the same namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,

    /// The ConfigMap key holding PEM CA certificates, in the same namespace (as
    /// trust-manager's bundles are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_config_map_ref: Option<ConfigMapKeyRef>,

    /// Also trust the sidecar container's system CA store (`SSL_CERT_FILE` /
    /// `SSL_CERT_DIR`, else the OS's usual files; the distroless image has none unless
    /// mounted). Default: false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub system_roots: bool,
}

/// Where a deployment's credential comes from without a key Secret: the cloud identity
/// of the pod's ServiceAccount. `aws-web-identity`: IRSA's web-identity token exchanged
/// at STS. `aws-pod-identity`: the EKS Pod Identity agent. `gcp-metadata`: the GKE (or
/// GCE) metadata server. `gcp-external-account`: workload identity federation through
/// Google STS. `azure-workload-identity`: the projected token exchanged at Entra ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadIdentity {
    // Variant meanings live in the type's doc (structural schemas allow no `oneOf`).
    AwsWebIdentity,
    AwsPodIdentity,
    GcpMetadata,
    GcpExternalAccount,
    AzureWorkloadIdentity,
}

impl WorkloadIdentity {
    /// The name used in manifests.
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
    pub fn provider(self) -> Provider {
        match self {
            WorkloadIdentity::AwsWebIdentity | WorkloadIdentity::AwsPodIdentity => {
                Provider::Bedrock
            }
            WorkloadIdentity::GcpMetadata | WorkloadIdentity::GcpExternalAccount => {
                Provider::Vertex
            }
            WorkloadIdentity::AzureWorkloadIdentity => Provider::Azure,
        }
    }
}

/// Where AWS credentials live: keys of one Secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsCredentialsRef {
    /// Name of the Secret, in the same namespace.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// Key holding the access key id. Default: `accessKeyId`.
    #[serde(default = "default_access_key_id_key")]
    #[schemars(length(min = 1, max = 253))]
    pub access_key_id_key: String,
    /// Key holding the secret access key. Default: `secretAccessKey`.
    #[serde(default = "default_secret_access_key_key")]
    #[schemars(length(min = 1, max = 253))]
    pub secret_access_key_key: String,
    /// Key holding a session token, for temporary credentials. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub session_token_key: Option<String>,
}

fn default_access_key_id_key() -> String {
    "accessKeyId".into()
}

fn default_secret_access_key_key() -> String {
    "secretAccessKey".into()
}

fn default_weight() -> u32 {
    1
}

impl ModelDeployment {
    /// A deployment with weight 1 and nothing else set.
    pub fn new(name: impl Into<String>, provider: Provider, model: impl Into<String>) -> Self {
        ModelDeployment {
            name: name.into(),
            provider,
            model: model.into(),
            base_url: None,
            api_key_secret_ref: None,
            api_version: None,
            weight: default_weight(),
            rpm: None,
            tpm: None,
            pricing: None,
            region: None,
            project: None,
            aws_credentials_secret_ref: None,
            service_account_secret_ref: None,
            token_url: None,
            tls: None,
            workload_identity: None,
        }
    }
}

/// Retries per error class, and the backoff between attempts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// Retries after a 429. Default: 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 20))]
    pub rate_limited: Option<u32>,
    /// Retries after a 5xx. Default: 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 20))]
    pub server_error: Option<u32>,
    /// Retries after a timeout. Default: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 20))]
    pub timeout: Option<u32>,
    /// Retries after a connection failure. Default: 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 20))]
    pub connect_error: Option<u32>,
    /// Retries after other 4xx responses. Default: 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 20))]
    pub client_error: Option<u32>,
    /// First backoff; doubled on each retry, with full jitter. Default: `250ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_backoff: Option<HumanDuration>,
    /// Cap on one backoff, and on how long a `Retry-After` is honoured. Default: `8s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backoff: Option<HumanDuration>,
}

/// Request time limits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Timeouts {
    /// The whole request, all attempts and fallbacks included, streams to their end.
    /// Default: `10m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<HumanDuration>,
    /// One attempt, until response headers and, for streams, the first chunk.
    /// Default: `60s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_first_token: Option<HumanDuration>,
}

/// When a deployment is rested: more than `allowedFails` failures within `window` rest
/// it for `duration`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Cooldown {
    /// Failures tolerated within the window; the next one starts the cooldown. Default: 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 1000))]
    pub allowed_fails: Option<u32>,
    /// The window failures are counted in. Default: `60s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<HumanDuration>,
    /// How long the deployment rests. Default: `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<HumanDuration>,
}

/// Prices in USD per million tokens, as decimal strings with at most 6 decimals
/// (e.g. `"0.15"`). Unset prices are zero (or, on a deployment, the model's price).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelPricing {
    /// Prompt tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_per_million: Option<UsdAmount>,
    /// Completion tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_per_million: Option<UsdAmount>,
    /// Prompt tokens served from the provider's prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input_per_million: Option<UsdAmount>,
    /// Prompt tokens written to the provider's prompt cache (Anthropic, Bedrock).
    /// Unset or zero: they cost the input price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_input_per_million: Option<UsdAmount>,
}

/// What a model's OpenTelemetry spans may carry (see docs/observability.md).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TelemetrySpec {
    /// Record prompts and completions on the calls' spans (`gen_ai.input.messages`,
    /// `gen_ai.system_instructions`, `gen_ai.output.messages`), each cut at 16 KiB.
    /// They then reach whoever can read the traces: leave it off (the default) unless
    /// that is intended. Streamed answers are not recorded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub capture_content: bool,
}

/// The model's response cache: answers kept in each sidecar's memory, per virtual key,
/// least recently used forgotten first once `maxEntries` or `maxBytes` is reached, each
/// for at most `ttl`. A call is answered from it when it repeats an earlier call of the
/// same key exactly: the same API, model, messages, tools and every parameter that can
/// change the answer (`user`, `metadata` and `stream` excepted). Errors and streams cut
/// short are never kept. Clients skip it with `Cache-Control: no-cache` (a fresh answer,
/// kept) or `no-store` (neither read nor kept). See docs/cache.md.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.ttl)").message("cache needs a ttl").field_path(".ttl"))]
#[x_kube(validation = Rule::new("!has(self.ttl) || (duration(self.ttl) > duration('0s') && duration(self.ttl) <= duration('168h'))").message("ttl must be more than 0s and at most 168h").field_path(".ttl"))]
#[x_kube(validation = Rule::new("!has(self.maxEntryBytes) || self.maxEntryBytes <= (has(self.maxBytes) ? self.maxBytes : 16777216)").message("maxEntryBytes must not exceed maxBytes (default 16777216)").field_path(".maxEntryBytes"))]
pub struct CacheSpec {
    /// How long an answer is served from the cache after it was stored; required, more
    /// than 0s and at most `168h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<HumanDuration>,

    /// Most answers kept for the model in each sidecar. Default: 1024.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub max_entries: Option<u32>,

    /// Most bytes of answers kept for the model in each sidecar (count it in the
    /// sidecar's memory limit); at most 1 GiB. Default: 16777216 (16 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1024, max = 1_073_741_824))]
    pub max_bytes: Option<u64>,

    /// Largest answer kept, in bytes, at most `maxBytes`; a larger one is served but
    /// not kept. Default: 1048576 (1 MiB), or `maxBytes` when that is smaller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 67_108_864))]
    pub max_entry_bytes: Option<u64>,
}

/// What the operator last observed and compiled.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LlmModelStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` is `True` once the model compiled into the pushed config.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// A short human summary for `kubectl get`, e.g. `2 deployments`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// How many deployments the model has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployments: Option<u32>,
}

#[cfg(test)]
#[path = "llm_model_tests.rs"]
mod tests;

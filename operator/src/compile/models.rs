//! Compiles an `LLMModel`: its deployments (credentials resolved from Secrets, CAs from
//! Secrets and ConfigMaps, provider requirements checked), retry, timeout and cooldown policies in milliseconds, prices in
//! micro-dollars, its response cache, and its fallbacks pruned to models the sidecar can
//! follow.

use std::collections::BTreeSet;

use llmesh_crds::{
    LlmModel,
    llm_model::{ModelDeployment, Provider, WorkloadIdentity},
    shared::HumanDuration,
};
use llmesh_sidecar::config::snapshot::{
    self, AwsCredentials, CooldownSpec, DeploymentSpec, ModelSpec, Pricing, ProviderKind,
    RetrySpec, SecretString, Strategy, TimeoutSpec,
};

use super::cache::cache;
use super::image_fetch::image_fetch;
use super::units::{is_http_url, millis, nonzero, pricing};
use super::{Reason, Report, lookup::Lookup, tls::compile_tls};

pub(super) fn compile_model(
    name: &str,
    model: &LlmModel,
    secrets: &Lookup<'_>,
    config_maps: &Lookup<'_>,
    report: &mut Report<'_>,
) -> ModelSpec {
    let spec = &model.spec;
    if spec.deployments.is_empty() {
        report.error(
            "spec.deployments",
            Reason::NoDeployments,
            "at least one deployment is required",
        );
    }
    let pricing = pricing(
        "spec.pricing",
        spec.pricing.as_ref(),
        Pricing::default(),
        report,
    );
    let mut seen = BTreeSet::new();
    let deployments = spec
        .deployments
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let at = format!("spec.deployments[{i}]");
            if !seen.insert(d.name.as_str()) {
                report.error(
                    format!("{at}.name"),
                    Reason::DuplicateDeployment,
                    format!("deployment name {:?} is used twice", d.name),
                );
            }
            compile_deployment(&at, d, pricing, (secrets, config_maps), report)
        })
        .collect();

    let (retry, timeouts, cooldown) = policies(spec, report);

    ModelSpec {
        name: name.to_owned(),
        strategy: strategy(spec.strategy),
        deployments,
        fallbacks: spec.fallbacks.clone(),
        context_window_fallbacks: spec.context_window_fallbacks.clone(),
        content_policy_fallbacks: spec.content_policy_fallbacks.clone(),
        retry,
        timeouts,
        cooldown,
        pricing,
        drop_unsupported_params: spec.drop_unsupported_params,
        default_max_tokens: spec.default_max_tokens,
        image_fetch: image_fetch(spec.image_fetch.as_ref(), report),
        capture_content: spec.telemetry.as_ref().is_some_and(|t| t.capture_content),
        cache: cache(spec.cache.as_ref(), report),
    }
}

pub(super) fn compile_deployment(
    at: &str,
    d: &ModelDeployment,
    model_pricing: Pricing,
    (secrets, config_maps): (&Lookup<'_>, &Lookup<'_>),
    report: &mut Report<'_>,
) -> DeploymentSpec {
    if d.weight == 0 {
        report.error(
            format!("{at}.weight"),
            Reason::InvalidWeight,
            "weight must be at least 1",
        );
    }
    match &d.base_url {
        Some(url) if !is_http_url(url) => report.error(
            format!("{at}.baseUrl"),
            Reason::InvalidBaseUrl,
            format!("baseUrl {url:?} must be an absolute http or https URL"),
        ),
        None if d.provider.needs_base_url() => report.error(
            format!("{at}.baseUrl"),
            Reason::InvalidBaseUrl,
            format!("baseUrl is required for provider {}", d.provider.as_str()),
        ),
        _ => {}
    }
    let api_key = match &d.api_key_secret_ref {
        Some(r) => match secrets.get(&r.name, &r.key) {
            Ok(value) => Some(SecretString::new(value)),
            Err((reason, message)) => {
                report.error(format!("{at}.apiKeySecretRef"), reason, message);
                None
            }
        },
        None if !d.provider.keyless() && d.workload_identity.is_none() => {
            report.error(
                format!("{at}.apiKeySecretRef"),
                Reason::MissingApiKey,
                format!("provider {} needs an API key", d.provider.as_str()),
            );
            None
        }
        None => None,
    };
    let pricing = d
        .pricing
        .as_ref()
        .map(|p| pricing(&format!("{at}.pricing"), Some(p), model_pricing, report));
    let mut secret = |field: &str, name: &str, key: &str| match secrets.get(name, key) {
        Ok(value) => Some(SecretString::new(value)),
        Err((reason, message)) => {
            report.error(format!("{at}.{field}"), reason, message);
            None
        }
    };
    let aws = d.aws_credentials_secret_ref.as_ref().and_then(|r| {
        let access_key_id = secret("awsCredentialsSecretRef", &r.name, &r.access_key_id_key);
        let secret_access_key =
            secret("awsCredentialsSecretRef", &r.name, &r.secret_access_key_key);
        let session_token = match &r.session_token_key {
            Some(key) => Some(secret("awsCredentialsSecretRef", &r.name, key)?),
            None => None,
        };
        Some(AwsCredentials {
            access_key_id: access_key_id?,
            secret_access_key: secret_access_key?,
            session_token,
        })
    });
    let gcp_service_account = d
        .service_account_secret_ref
        .as_ref()
        .and_then(|r| secret("serviceAccountSecretRef", &r.name, &r.key));
    if d.provider.needs_region() && d.region.is_none() {
        report.error(
            format!("{at}.region"),
            Reason::MissingRegion,
            format!("provider {} needs a region", d.provider.as_str()),
        );
    }
    if let Some(identity) = d.workload_identity {
        check_identity(at, d, identity, report);
    }
    match d.provider {
        _ if d.workload_identity.is_some() => {}
        Provider::Bedrock
            if d.aws_credentials_secret_ref.is_none() && d.api_key_secret_ref.is_none() =>
        {
            report.error(
                format!("{at}.awsCredentialsSecretRef"),
                Reason::MissingApiKey,
                "bedrock needs awsCredentialsSecretRef (or apiKeySecretRef for a Bedrock API key)",
            )
        }
        Provider::Vertex if d.service_account_secret_ref.is_none() => report.error(
            format!("{at}.serviceAccountSecretRef"),
            Reason::MissingApiKey,
            "vertex needs serviceAccountSecretRef",
        ),
        _ => {}
    }
    let tls = d
        .tls
        .as_ref()
        .map(|tls| compile_tls(at, tls, secrets, config_maps, report));
    DeploymentSpec {
        name: d.name.clone(),
        provider: provider(d.provider),
        model: d.model.clone(),
        base_url: d.base_url.clone(),
        api_key,
        api_version: d.api_version.clone(),
        weight: d.weight,
        rpm: d.rpm,
        tpm: d.tpm,
        pricing,
        region: d.region.clone(),
        project: d.project.clone(),
        aws,
        gcp_service_account,
        token_url: d.token_url.clone(),
        tls,
        workload_identity: d.workload_identity.map(workload_identity),
    }
}

/// What the CRD's rules say of `workloadIdentity`, checked again here as for every
/// field (a cluster may run without CEL, and `llmesh-local` has none).
fn check_identity(
    at: &str,
    d: &ModelDeployment,
    identity: WorkloadIdentity,
    report: &mut Report<'_>,
) {
    let mut problem = |field: &str, message: String| {
        report.error(
            format!("{at}.{field}"),
            Reason::InvalidWorkloadIdentity,
            message,
        );
    };
    if identity.provider() != d.provider {
        problem(
            "workloadIdentity",
            format!(
                "workloadIdentity {} does not apply to provider {} (it is for {})",
                identity.as_str(),
                d.provider.as_str(),
                identity.provider().as_str()
            ),
        );
    }
    let config_secret = identity == WorkloadIdentity::GcpExternalAccount;
    for (field, set) in [
        ("apiKeySecretRef", d.api_key_secret_ref.is_some()),
        (
            "awsCredentialsSecretRef",
            d.aws_credentials_secret_ref.is_some(),
        ),
        ("tokenUrl", d.token_url.is_some()),
        (
            "serviceAccountSecretRef",
            d.service_account_secret_ref.is_some() && !config_secret,
        ),
    ] {
        if set {
            problem(
                field,
                format!(
                    "{field} cannot be set with workloadIdentity {}, which replaces it",
                    identity.as_str()
                ),
            );
        }
    }
    if config_secret && d.project.is_none() {
        problem(
            "project",
            "project is required with workloadIdentity gcp-external-account".to_owned(),
        );
    }
}

fn workload_identity(value: WorkloadIdentity) -> snapshot::WorkloadIdentity {
    match value {
        WorkloadIdentity::AwsWebIdentity => snapshot::WorkloadIdentity::AwsWebIdentity,
        WorkloadIdentity::AwsPodIdentity => snapshot::WorkloadIdentity::AwsPodIdentity,
        WorkloadIdentity::GcpMetadata => snapshot::WorkloadIdentity::GcpMetadata,
        WorkloadIdentity::GcpExternalAccount => snapshot::WorkloadIdentity::GcpExternalAccount,
        WorkloadIdentity::AzureWorkloadIdentity => {
            snapshot::WorkloadIdentity::AzureWorkloadIdentity
        }
    }
}

/// The retry, timeout and cooldown policies, unset fields taking the sidecar's defaults.
fn policies(
    spec: &llmesh_crds::llm_model::LlmModelSpec,
    report: &mut Report<'_>,
) -> (RetrySpec, TimeoutSpec, CooldownSpec) {
    let mut ms = |field: &str, value: &Option<HumanDuration>, default: u64| {
        millis(field, value.as_ref(), default, report)
    };
    let (r, d) = (spec.retry.clone().unwrap_or_default(), RetrySpec::default());
    let retry = RetrySpec {
        rate_limited: r.rate_limited.unwrap_or(d.rate_limited),
        server_error: r.server_error.unwrap_or(d.server_error),
        timeout: r.timeout.unwrap_or(d.timeout),
        connect_error: r.connect_error.unwrap_or(d.connect_error),
        client_error: r.client_error.unwrap_or(d.client_error),
        initial_backoff_ms: ms(
            "spec.retry.initialBackoff",
            &r.initial_backoff,
            d.initial_backoff_ms,
        ),
        max_backoff_ms: ms("spec.retry.maxBackoff", &r.max_backoff, d.max_backoff_ms),
    };
    let (c, d) = (
        spec.cooldown.clone().unwrap_or_default(),
        CooldownSpec::default(),
    );
    let cooldown = CooldownSpec {
        allowed_fails: c.allowed_fails.unwrap_or(d.allowed_fails),
        window_ms: ms("spec.cooldown.window", &c.window, d.window_ms),
        duration_ms: ms("spec.cooldown.duration", &c.duration, d.duration_ms),
    };
    // Each timeout is read, then checked for zero, so its problems come in that order.
    let (t, d) = (
        spec.timeouts.clone().unwrap_or_default(),
        TimeoutSpec::default(),
    );
    let (total, ttft) = ("spec.timeouts.total", "spec.timeouts.timeToFirstToken");
    let total_ms = millis(total, t.total.as_ref(), d.total_ms, report);
    let total_ms = nonzero(total, total_ms, report);
    let ttft_ms = millis(
        ttft,
        t.time_to_first_token.as_ref(),
        d.time_to_first_token_ms,
        report,
    );
    let timeouts = TimeoutSpec {
        total_ms,
        time_to_first_token_ms: nonzero(ttft, ttft_ms, report),
    };
    (retry, timeouts, cooldown)
}

/// Drops fallbacks the sidecar could not follow, with a warning each: the model itself
/// stays served, only the fallback goes.
pub(super) fn prune_fallbacks(
    model: &mut ModelSpec,
    compiled: &BTreeSet<String>,
    declared: &BTreeSet<&str>,
    report: &mut Report<'_>,
) {
    let name = model.name.clone();
    for (field, list) in [
        ("spec.fallbacks", &mut model.fallbacks),
        (
            "spec.contextWindowFallbacks",
            &mut model.context_window_fallbacks,
        ),
        (
            "spec.contentPolicyFallbacks",
            &mut model.content_policy_fallbacks,
        ),
    ] {
        let mut index = 0;
        let mut seen = BTreeSet::new();
        list.retain(|target| {
            let at = format!("{field}[{index}]");
            index += 1;
            let problem = if *target == name {
                Some((
                    Reason::SelfFallback,
                    "a model cannot fall back to itself".to_owned(),
                ))
            } else if !declared.contains(target.as_str()) {
                Some((
                    Reason::UnknownFallback,
                    format!("LLMModel {target:?} does not exist"),
                ))
            } else if !compiled.contains(target) {
                Some((
                    Reason::FallbackNotReady,
                    format!("LLMModel {target:?} is not ready"),
                ))
            } else {
                // A repeat adds nothing: the model already failed once.
                return seen.insert(target.clone());
            };
            if let Some((reason, message)) = problem {
                report.warn(at, reason, format!("{message}; fallback ignored"));
            }
            false
        });
    }
}

/// The sidecar's routing strategy for a CRD strategy (a free function for the same
/// reason as [`provider`]).
fn strategy(value: llmesh_crds::llm_model::RoutingStrategy) -> Strategy {
    use llmesh_crds::llm_model::RoutingStrategy as S;
    match value {
        S::WeightedShuffle => Strategy::WeightedShuffle,
        S::LeastBusy => Strategy::LeastBusy,
        S::LowestLatency => Strategy::LowestLatency,
        S::UsageBased => Strategy::UsageBased,
        S::LowestCost => Strategy::LowestCost,
    }
}

/// The sidecar's provider kind for a CRD provider. A free function, not
/// `From<Provider> for ProviderKind`: both types are foreign to this crate, so the orphan
/// rule puts that impl in `llmesh-crds` or `llmesh-sidecar`, and neither may depend on
/// the other (the sidecar never sees Kubernetes types; the API crate carries no data
/// plane). `every_provider_maps_to_the_kind_of_its_name` keeps the two lists in step.
pub(super) fn provider(value: Provider) -> ProviderKind {
    match value {
        Provider::Openai => ProviderKind::Openai,
        Provider::Azure => ProviderKind::Azure,
        Provider::Ollama => ProviderKind::Ollama,
        Provider::Vllm => ProviderKind::Vllm,
        Provider::Groq => ProviderKind::Groq,
        Provider::Mistral => ProviderKind::Mistral,
        Provider::Deepseek => ProviderKind::Deepseek,
        Provider::Together => ProviderKind::Together,
        Provider::Fireworks => ProviderKind::Fireworks,
        Provider::Openrouter => ProviderKind::Openrouter,
        Provider::Perplexity => ProviderKind::Perplexity,
        Provider::OpenaiCompatible => ProviderKind::OpenaiCompatible,
        Provider::Demo => ProviderKind::Demo,
        Provider::Anthropic => ProviderKind::Anthropic,
        Provider::Gemini => ProviderKind::Gemini,
        Provider::Vertex => ProviderKind::Vertex,
        Provider::Bedrock => ProviderKind::Bedrock,
        Provider::Cohere => ProviderKind::Cohere,
    }
}

#[cfg(test)]
#[path = "models_tests.rs"]
mod tests;

//! Compiles one namespace's `LLMModel`s, `VirtualKey`s, `Budget`s and Secrets into the
//! sidecar's [`Snapshot`]: a pure function, no I/O, shared by the operator and the local
//! runner.
//!
//! A resource that cannot be compiled is left out and reported as an error [`Problem`];
//! the others stay, so one broken model never takes the rest down. A reference that
//! cannot be honoured (a fallback to a missing model, a budget that is not there) is
//! dropped and reported as a warning, because the sidecar refuses a whole snapshot with a
//! dangling reference.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
};

use k8s_openapi::api::core::v1::Secret;
use llmesh_crds::{
    Budget, LlmModel, VirtualKey,
    budget::BudgetActionType,
    llm_model::{ModelDeployment, ModelPricing, Provider},
    shared::{HumanDuration, UsdAmount},
    virtual_key::SECRET_KEY_FIELD,
};
use llmesh_sidecar::config::snapshot::{
    self, AwsCredentials, BudgetSpec, CooldownSpec, DeploymentSpec, KeySpec, ModelSpec, Pricing,
    ProviderKind, RetrySpec, SecretString, Snapshot, Strategy, TimeoutSpec,
};
use sha2::{Digest, Sha256};

/// One namespace's resources, as read from the API server or from manifest files.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// The `LLMModel`s.
    pub models: Vec<LlmModel>,
    /// The `VirtualKey`s.
    pub keys: Vec<VirtualKey>,
    /// The `Budget`s.
    pub budgets: Vec<Budget>,
    /// The Secrets the resources may reference; others are ignored.
    pub secrets: Vec<Secret>,
}

/// The compiled snapshot and what had to be left out of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Compiled {
    /// The sidecar config; contains only resources that compiled.
    pub snapshot: Snapshot,
    /// Everything wrong with the inputs, in resource order.
    pub problems: Vec<Problem>,
    /// The Secrets the resources referenced, found or not: the only ones whose values
    /// the operator needs (the hub reads no others).
    pub secrets_used: BTreeSet<String>,
}

impl Compiled {
    /// The problems of one resource, e.g. to build its `Ready` condition.
    pub fn problems_for<'a>(
        &'a self,
        kind: Kind,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Problem> + 'a {
        self.problems
            .iter()
            .filter(move |p| p.kind == kind && p.name == name)
    }
}

/// The kinds of resource a [`Problem`] can be about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `LLMModel`.
    LlmModel,
    /// `VirtualKey`.
    VirtualKey,
    /// `Budget`.
    Budget,
}

impl Kind {
    /// The Kubernetes kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::LlmModel => "LLMModel",
            Kind::VirtualKey => "VirtualKey",
            Kind::Budget => "Budget",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a problem did to its resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Severity {
    /// The resource was left out of the snapshot.
    Error,
    /// The resource is in the snapshot, without the part named by the problem.
    Warning,
}

/// Machine-readable cause of a problem; used as a condition `reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The resource has no name.
    MissingName,
    /// Another resource of the same kind has the same name.
    DuplicateName,
    /// A referenced Secret does not exist (for a VirtualKey: its key is not generated yet).
    SecretNotFound,
    /// The Secret exists but lacks the key.
    SecretKeyMissing,
    /// The Secret value is empty, not UTF-8, or holds control characters.
    InvalidSecretValue,
    /// A hosted provider's deployment has no `apiKeySecretRef`.
    MissingApiKey,
    /// A duration does not parse or is out of range.
    InvalidDuration,
    /// A price or amount is not a non-negative decimal with at most 6 decimals.
    InvalidPrice,
    /// A budget period does not parse.
    InvalidPeriod,
    /// A model has no deployments.
    NoDeployments,
    /// Two deployments of a model share a name.
    DuplicateDeployment,
    /// A deployment's weight is zero.
    InvalidWeight,
    /// A deployment's `baseUrl` is missing (azure, openai-compatible) or not http(s).
    InvalidBaseUrl,
    /// A fallback names a model that does not exist.
    UnknownFallback,
    /// A fallback names a model that exists but did not compile.
    FallbackNotReady,
    /// A fallback names the model itself.
    SelfFallback,
    /// A model name (allow-list, selector, downgrade target) names no usable model.
    UnknownModel,
    /// A key names a budget that does not exist or did not compile.
    UnknownBudget,
    /// A budget selector names a key that does not exist.
    UnknownKey,
    /// A budget selects nothing.
    EmptySelector,
    /// A budget's action is inconsistent (downgrade without a target).
    InvalidAction,
}

impl Reason {
    /// The reason as a `CamelCase` word, as Kubernetes conditions expect.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MissingName => "MissingName",
            Reason::DuplicateName => "DuplicateName",
            Reason::SecretNotFound => "SecretNotFound",
            Reason::SecretKeyMissing => "SecretKeyMissing",
            Reason::InvalidSecretValue => "InvalidSecretValue",
            Reason::MissingApiKey => "MissingApiKey",
            Reason::InvalidDuration => "InvalidDuration",
            Reason::InvalidPrice => "InvalidPrice",
            Reason::InvalidPeriod => "InvalidPeriod",
            Reason::NoDeployments => "NoDeployments",
            Reason::DuplicateDeployment => "DuplicateDeployment",
            Reason::InvalidWeight => "InvalidWeight",
            Reason::InvalidBaseUrl => "InvalidBaseUrl",
            Reason::UnknownFallback => "UnknownFallback",
            Reason::FallbackNotReady => "FallbackNotReady",
            Reason::SelfFallback => "SelfFallback",
            Reason::UnknownModel => "UnknownModel",
            Reason::UnknownBudget => "UnknownBudget",
            Reason::UnknownKey => "UnknownKey",
            Reason::EmptySelector => "EmptySelector",
            Reason::InvalidAction => "InvalidAction",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something wrong with one resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The resource's kind.
    pub kind: Kind,
    /// The resource's name.
    pub name: String,
    /// The field at fault, e.g. `spec.deployments[1].apiKeySecretRef`.
    pub field: String,
    /// Why, for machines.
    pub reason: Reason,
    /// Whether the resource was left out or only lost the faulty part.
    pub severity: Severity,
    /// Why, for people. Never contains a secret value.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:?}: {}: {} ({})",
            self.kind, self.name, self.field, self.message, self.reason
        )
    }
}

/// Compiles one namespace's resources into a snapshot. Pure: equal inputs give equal
/// outputs, including the snapshot's `version`.
pub fn compile(input: &Inputs) -> Compiled {
    let secrets = Secrets::new(&input.secrets);
    let mut problems = Vec::new();

    let mut models: Vec<ModelSpec> = unique_by_name(&input.models, Kind::LlmModel, &mut problems)
        .into_iter()
        .filter_map(|(name, model)| {
            let mut report = Report::new(Kind::LlmModel, name, &mut problems);
            let spec = compile_model(name, model, &secrets, &mut report);
            report.ok().then_some(spec)
        })
        .collect();
    let model_names: BTreeSet<String> = models.iter().map(|m| m.name.clone()).collect();
    let declared_models: BTreeSet<&str> = input
        .models
        .iter()
        .filter_map(|m| m.metadata.name.as_deref())
        .collect();
    for model in &mut models {
        let mut report = Report::new(Kind::LlmModel, &model.name, &mut problems);
        prune_fallbacks(model, &model_names, &declared_models, &mut report);
    }

    let mut budgets: Vec<BudgetSpec> = unique_by_name(&input.budgets, Kind::Budget, &mut problems)
        .into_iter()
        .filter_map(|(name, budget)| {
            let mut report = Report::new(Kind::Budget, name, &mut problems);
            let spec = compile_budget(name, budget, &model_names, &mut report);
            report.ok().then_some(spec)
        })
        .collect();
    let budget_names: BTreeSet<&str> = budgets.iter().map(|b| b.name.as_str()).collect();

    let keys: Vec<KeySpec> = unique_by_name(&input.keys, Kind::VirtualKey, &mut problems)
        .into_iter()
        .filter_map(|(name, key)| {
            let mut report = Report::new(Kind::VirtualKey, name, &mut problems);
            let spec = compile_key(
                name,
                key,
                &secrets,
                &model_names,
                &budget_names,
                &mut report,
            );
            report.ok().then_some(spec)
        })
        .collect();

    // Resolve the key→budget direction too, so the sidecar reads one list per budget.
    let declared_keys: BTreeSet<&str> = input
        .keys
        .iter()
        .filter_map(|k| k.metadata.name.as_deref())
        .collect();
    for budget in &mut budgets {
        let mut report = Report::new(Kind::Budget, &budget.name, &mut problems);
        for (i, key) in budget.keys.iter().enumerate() {
            if !declared_keys.contains(key.as_str()) {
                report.warn(
                    format!("spec.selector.keys[{i}]"),
                    Reason::UnknownKey,
                    format!("VirtualKey {key:?} does not exist"),
                );
            }
        }
        let referencing = keys
            .iter()
            .filter(|k| k.budget.as_deref() == Some(budget.name.as_str()))
            .map(|k| k.name.clone());
        let all: BTreeSet<String> = budget.keys.drain(..).chain(referencing).collect();
        budget.keys = all.into_iter().collect();
    }

    let mut snapshot = Snapshot {
        format: snapshot::FORMAT,
        version: String::new(),
        models,
        keys,
        budgets,
    };
    snapshot.version = content_version(&snapshot);
    let secrets_used = secrets.used.into_inner();
    Compiled {
        snapshot,
        problems,
        secrets_used,
    }
}

/// The first 16 hex digits of the SHA-256 of the snapshot serialized with an empty
/// version: equal content gives an equal version.
fn content_version(snapshot: &Snapshot) -> String {
    let bytes = serde_json::to_vec(snapshot).unwrap_or_default();
    let mut hex = llmesh_sidecar::hex::hex(&Sha256::digest(&bytes));
    hex.truncate(16);
    hex
}

/// Collects the problems of one resource and remembers whether any was fatal.
struct Report<'p> {
    kind: Kind,
    name: String,
    problems: &'p mut Vec<Problem>,
    failed: bool,
}

impl<'p> Report<'p> {
    fn new(kind: Kind, name: &str, problems: &'p mut Vec<Problem>) -> Self {
        Report {
            kind,
            name: name.to_owned(),
            problems,
            failed: false,
        }
    }

    fn push(&mut self, field: String, reason: Reason, severity: Severity, message: String) {
        self.problems.push(Problem {
            kind: self.kind,
            name: self.name.clone(),
            field,
            reason,
            severity,
            message,
        });
    }

    fn error(&mut self, field: impl Into<String>, reason: Reason, message: impl Into<String>) {
        self.failed = true;
        self.push(field.into(), reason, Severity::Error, message.into());
    }

    fn warn(&mut self, field: impl Into<String>, reason: Reason, message: impl Into<String>) {
        self.push(field.into(), reason, Severity::Warning, message.into());
    }

    /// An error (the resource is not Ready) that keeps the resource in the snapshot,
    /// where the sidecar refuses its use and says why: better than the silence of a
    /// resource left out.
    fn refuse(&mut self, field: impl Into<String>, reason: Reason, message: impl Into<String>) {
        self.push(field.into(), reason, Severity::Error, message.into());
    }

    fn ok(&self) -> bool {
        !self.failed
    }
}

/// Resources sorted by name; nameless and repeated ones are reported and dropped (the
/// API server makes both impossible, manifest files do not).
fn unique_by_name<'a, K: named::Named>(
    items: &'a [K],
    kind: Kind,
    problems: &mut Vec<Problem>,
) -> Vec<(&'a str, &'a K)> {
    let mut named: Vec<(&str, &K)> = Vec::with_capacity(items.len());
    for item in items {
        match item.name() {
            Some(name) if !name.is_empty() => named.push((name, item)),
            _ => Report::new(kind, "", problems).error(
                "metadata.name",
                Reason::MissingName,
                "metadata.name is required",
            ),
        }
    }
    named.sort_by(|a, b| a.0.cmp(b.0));
    let mut out: Vec<(&str, &K)> = Vec::with_capacity(named.len());
    for (name, item) in named {
        if out.last().is_some_and(|(last, _)| *last == name) {
            Report::new(kind, name, problems).error(
                "metadata.name",
                Reason::DuplicateName,
                format!("another {kind} is named {name:?}; only the first is used"),
            );
        } else {
            out.push((name, item));
        }
    }
    out
}

/// Name access shared by the three resource types.
mod named {
    use llmesh_crds::{Budget, LlmModel, VirtualKey};

    pub trait Named {
        fn name(&self) -> Option<&str>;
    }

    macro_rules! named {
        ($($t:ty),*) => {$(
            impl Named for $t {
                fn name(&self) -> Option<&str> {
                    self.metadata.name.as_deref()
                }
            }
        )*};
    }

    named!(LlmModel, VirtualKey, Budget);
}

/// Secret data by Secret name and key, with `stringData` overriding `data` as the API
/// server does on write.
struct Secrets<'a> {
    by_name: BTreeMap<&'a str, BTreeMap<&'a str, &'a [u8]>>,
    /// Every name asked for.
    used: std::cell::RefCell<BTreeSet<String>>,
}

impl<'a> Secrets<'a> {
    fn new(secrets: &'a [Secret]) -> Self {
        let mut by_name = BTreeMap::new();
        for secret in secrets {
            let Some(name) = secret.metadata.name.as_deref() else {
                continue;
            };
            let mut values: BTreeMap<&str, &[u8]> = BTreeMap::new();
            for (key, value) in secret.data.iter().flatten() {
                values.insert(key, &value.0);
            }
            for (key, value) in secret.string_data.iter().flatten() {
                values.insert(key, value.as_bytes());
            }
            by_name.insert(name, values);
        }
        Secrets {
            by_name,
            used: std::cell::RefCell::new(BTreeSet::new()),
        }
    }

    /// The value of `key` in Secret `name`, trimmed of surrounding whitespace (a trailing
    /// newline from `--from-file` is never part of a credential).
    fn get(&self, name: &str, key: &str) -> Result<String, (Reason, String)> {
        self.used.borrow_mut().insert(name.to_owned());
        let data = self
            .by_name
            .get(name)
            .ok_or_else(|| (Reason::SecretNotFound, format!("Secret {name:?} not found")))?;
        let raw = data.get(key).ok_or_else(|| {
            (
                Reason::SecretKeyMissing,
                format!("Secret {name:?} has no key {key:?}"),
            )
        })?;
        let text = std::str::from_utf8(raw).map_err(|_| {
            (
                Reason::InvalidSecretValue,
                format!("Secret {name:?} key {key:?} is not UTF-8"),
            )
        })?;
        let text = text.trim();
        if text.is_empty() {
            return Err((
                Reason::InvalidSecretValue,
                format!("Secret {name:?} key {key:?} is empty"),
            ));
        }
        if text.chars().any(char::is_control) {
            return Err((
                Reason::InvalidSecretValue,
                format!("Secret {name:?} key {key:?} contains control characters"),
            ));
        }
        Ok(text.to_owned())
    }
}

fn compile_model(
    name: &str,
    model: &LlmModel,
    secrets: &Secrets<'_>,
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
            compile_deployment(&at, d, pricing, secrets, report)
        })
        .collect();

    let retry = spec.retry.clone().unwrap_or_default();
    let defaults = RetrySpec::default();
    let retry = RetrySpec {
        rate_limited: retry.rate_limited.unwrap_or(defaults.rate_limited),
        server_error: retry.server_error.unwrap_or(defaults.server_error),
        timeout: retry.timeout.unwrap_or(defaults.timeout),
        connect_error: retry.connect_error.unwrap_or(defaults.connect_error),
        client_error: retry.client_error.unwrap_or(defaults.client_error),
        initial_backoff_ms: millis(
            "spec.retry.initialBackoff",
            retry.initial_backoff.as_ref(),
            defaults.initial_backoff_ms,
            report,
        ),
        max_backoff_ms: millis(
            "spec.retry.maxBackoff",
            retry.max_backoff.as_ref(),
            defaults.max_backoff_ms,
            report,
        ),
    };

    let timeouts = spec.timeouts.clone().unwrap_or_default();
    let defaults = TimeoutSpec::default();
    let timeouts = TimeoutSpec {
        total_ms: positive_millis(
            "spec.timeouts.total",
            timeouts.total.as_ref(),
            defaults.total_ms,
            report,
        ),
        time_to_first_token_ms: positive_millis(
            "spec.timeouts.timeToFirstToken",
            timeouts.time_to_first_token.as_ref(),
            defaults.time_to_first_token_ms,
            report,
        ),
    };

    let cooldown = spec.cooldown.clone().unwrap_or_default();
    let defaults = CooldownSpec::default();
    let cooldown = CooldownSpec {
        allowed_fails: cooldown.allowed_fails.unwrap_or(defaults.allowed_fails),
        window_ms: millis(
            "spec.cooldown.window",
            cooldown.window.as_ref(),
            defaults.window_ms,
            report,
        ),
        duration_ms: millis(
            "spec.cooldown.duration",
            cooldown.duration.as_ref(),
            defaults.duration_ms,
            report,
        ),
    };

    if let Some(ttl) = spec.cache.as_ref().and_then(|c| c.ttl.as_ref()) {
        // Reserved: not in the snapshot yet, but a typo should not wait until it is.
        millis("spec.cache.ttl", Some(ttl), 0, report);
    }

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
    }
}

fn compile_deployment(
    at: &str,
    d: &ModelDeployment,
    model_pricing: Pricing,
    secrets: &Secrets<'_>,
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
        None if !d.provider.keyless() => {
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
            Reason::MissingApiKey,
            format!("provider {} needs a region", d.provider.as_str()),
        );
    }
    match d.provider {
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
    }
}

/// Drops fallbacks the sidecar could not follow, with a warning each: the model itself
/// stays served, only the fallback goes.
fn prune_fallbacks(
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

fn compile_budget(
    name: &str,
    budget: &Budget,
    models: &BTreeSet<String>,
    report: &mut Report<'_>,
) -> BudgetSpec {
    let spec = &budget.spec;
    let limit_micros = match spec.limit.to_micros() {
        Ok(micros) => micros,
        Err(err) => {
            report.error("spec.limit", Reason::InvalidPrice, err.to_string());
            0
        }
    };
    if let Err(err) = spec.period.parse() {
        report.error("spec.period", Reason::InvalidPeriod, err.to_string());
    }
    if spec.selector.keys.is_empty() && spec.selector.models.is_empty() {
        report.error(
            "spec.selector",
            Reason::EmptySelector,
            "selector must name at least one key or model",
        );
    }
    for (i, model) in spec.selector.models.iter().enumerate() {
        if !models.contains(model) {
            report.warn(
                format!("spec.selector.models[{i}]"),
                Reason::UnknownModel,
                format!("LLMModel {model:?} does not exist or is not ready"),
            );
        }
    }
    let downgrade_to = match &spec.action {
        Some(action) if action.kind == BudgetActionType::Downgrade => match &action.downgrade_to {
            None => {
                report.error(
                    "spec.action.downgradeTo",
                    Reason::InvalidAction,
                    "downgradeTo is required when type is downgrade",
                );
                None
            }
            // Rejecting is the safe reading of a downgrade that cannot happen: the
            // budget still holds.
            Some(target) if !models.contains(target) => {
                report.warn(
                    "spec.action.downgradeTo",
                    Reason::UnknownModel,
                    format!(
                        "LLMModel {target:?} does not exist or is not ready; requests are rejected once the budget is exhausted"
                    ),
                );
                None
            }
            Some(target) => Some(target.clone()),
        },
        _ => None,
    };
    BudgetSpec {
        name: name.to_owned(),
        limit_micros,
        keys: spec.selector.keys.clone(),
        models: spec.selector.models.clone(),
        downgrade_to,
    }
}

fn compile_key(
    name: &str,
    key: &VirtualKey,
    secrets: &Secrets<'_>,
    models: &BTreeSet<String>,
    budgets: &BTreeSet<&str>,
    report: &mut Report<'_>,
) -> KeySpec {
    let spec = &key.spec;
    let secret_name = key.secret_name();
    let (sha256, display_prefix) = match secrets.get(&secret_name, SECRET_KEY_FIELD) {
        Ok(value) => (
            llmesh_sidecar::meter::keys::sha256_hex(&value),
            display_prefix(&value),
        ),
        Err((reason, message)) => {
            let message = if reason == Reason::SecretNotFound {
                format!("{message} (the key has not been generated yet)")
            } else {
                message
            };
            report.error("spec.secretName", reason, message);
            (String::new(), String::new())
        }
    };
    for (i, model) in spec.models.iter().enumerate() {
        // Kept even so: dropping it could empty the list, and empty means all models.
        if !models.contains(model) {
            report.warn(
                format!("spec.models[{i}]"),
                Reason::UnknownModel,
                format!("LLMModel {model:?} does not exist or is not ready"),
            );
        }
    }
    // Fail closed: a key that names a Budget nobody can check spends nothing. The name
    // stays in the snapshot, so the sidecar refuses the key's calls saying why.
    if let Some(budget) = &spec.budget_ref
        && !budgets.contains(budget.as_str())
    {
        report.refuse(
            "spec.budgetRef",
            Reason::UnknownBudget,
            format!(
                "Budget {budget:?} does not exist or is not ready; the key's calls are refused until it is"
            ),
        );
    }
    let budget = spec.budget_ref.clone();
    let limits = spec.limits.clone().unwrap_or_default();
    KeySpec {
        name: name.to_owned(),
        sha256,
        display_prefix,
        models: spec.models.clone(),
        rpm: limits.rpm,
        tpm: limits.tpm,
        max_parallel_requests: limits.max_parallel_requests,
        expires_at_unix: spec.expires_at.as_ref().map(|t| t.0.as_second()),
        team: spec.team.clone(),
        user: spec.user.clone(),
        budget,
    }
}

/// The key's first 14 characters (`sk-llmesh-abcd`), but never more than half of it, so
/// a short hand-made key is not shown whole.
fn display_prefix(key: &str) -> String {
    let len = key.chars().count();
    key.chars().take(14.min(len / 2)).collect()
}

fn millis(
    field: &str,
    value: Option<&HumanDuration>,
    default: u64,
    report: &mut Report<'_>,
) -> u64 {
    match value.map(HumanDuration::to_millis) {
        None => default,
        Some(Ok(ms)) => ms,
        Some(Err(err)) => {
            report.error(field, Reason::InvalidDuration, err.to_string());
            default
        }
    }
}

fn positive_millis(
    field: &str,
    value: Option<&HumanDuration>,
    default: u64,
    report: &mut Report<'_>,
) -> u64 {
    let ms = millis(field, value, default, report);
    if ms == 0 {
        report.error(field, Reason::InvalidDuration, "must be longer than 0s");
    }
    ms
}

/// Prices from `value`, each unset one taken from `base`.
fn pricing(
    at: &str,
    value: Option<&ModelPricing>,
    base: Pricing,
    report: &mut Report<'_>,
) -> Pricing {
    let Some(value) = value else {
        return base;
    };
    let mut price = |field: &str, amount: Option<&UsdAmount>, base: u64| match amount
        .map(UsdAmount::to_micros)
    {
        None => base,
        Some(Ok(micros)) => micros,
        Some(Err(err)) => {
            report.error(
                format!("{at}.{field}"),
                Reason::InvalidPrice,
                err.to_string(),
            );
            base
        }
    };
    Pricing {
        input_micros_per_million: price(
            "inputPerMillion",
            value.input_per_million.as_ref(),
            base.input_micros_per_million,
        ),
        output_micros_per_million: price(
            "outputPerMillion",
            value.output_per_million.as_ref(),
            base.output_micros_per_million,
        ),
        cached_input_micros_per_million: price(
            "cachedInputPerMillion",
            value.cached_input_per_million.as_ref(),
            base.cached_input_micros_per_million,
        ),
    }
}

/// An absolute `http`/`https` URL with a host; the same test the sidecar applies, so a
/// URL it would refuse (and with it the whole snapshot) never reaches it.
fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            !host.is_empty() && !url.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

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

fn provider(value: Provider) -> ProviderKind {
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
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::{ByteString, apimachinery::pkg::apis::meta::v1::ObjectMeta};
    use llmesh_crds::{
        llm_model::{Cooldown, RetryPolicy, RoutingStrategy, Timeouts},
        shared::HumanDuration,
    };

    use super::*;

    fn secret(name: &str, data: &[(&str, &str)], string_data: &[(&str, &str)]) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            data: (!data.is_empty()).then(|| {
                data.iter()
                    .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                    .collect::<BTreeMap<_, _>>()
            }),
            string_data: (!string_data.is_empty()).then(|| {
                string_data
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<BTreeMap<_, _>>()
            }),
            ..Secret::default()
        }
    }

    fn openai(name: &str, secret: &str) -> ModelDeployment {
        ModelDeployment::new(name, Provider::Openai, "gpt-4o-mini").with_secret(secret, "apiKey")
    }

    fn reasons(compiled: &Compiled) -> Vec<(String, &str, Reason, Severity)> {
        compiled
            .problems
            .iter()
            .map(|p| (p.name.clone(), p.field.as_str(), p.reason, p.severity))
            .collect()
    }

    #[test]
    fn empty_inputs_give_an_empty_versioned_snapshot() {
        let compiled = compile(&Inputs::default());
        assert!(compiled.problems.is_empty());
        assert_eq!(compiled.snapshot.format, snapshot::FORMAT);
        assert_eq!(compiled.snapshot.version.len(), 16);
        assert!(compiled.snapshot.models.is_empty());
    }

    #[test]
    fn unset_fields_take_the_sidecar_defaults() {
        let compiled = compile(&Inputs {
            models: vec![LlmModel::test("chat")],
            ..Inputs::default()
        });
        assert_eq!(compiled.problems, []);
        let model = &compiled.snapshot.models[0];
        assert_eq!(model.name, "chat");
        assert_eq!(model.strategy, Strategy::WeightedShuffle);
        assert_eq!(model.retry, RetrySpec::default());
        assert_eq!(model.timeouts, TimeoutSpec::default());
        assert_eq!(model.cooldown, CooldownSpec::default());
        assert_eq!(model.pricing, Pricing::default());
        let d = &model.deployments[0];
        assert_eq!(
            (d.name.as_str(), d.provider, d.model.as_str()),
            ("d0", ProviderKind::Demo, "echo")
        );
        assert_eq!((d.weight, d.api_key.clone(), d.pricing), (1, None, None));
    }

    #[test]
    fn durations_become_millis_and_prices_micros() {
        let mut model = LlmModel::test("chat")
            .with_strategy(RoutingStrategy::LowestCost)
            .with_prices("0.15", "0.6")
            .with_deployments([
                ModelDeployment::new("a", Provider::Demo, "echo").with_weight(3),
                ModelDeployment::new("b", Provider::Demo, "echo"),
            ]);
        model.spec.deployments[1].pricing = Some(ModelPricing {
            output_per_million: Some(UsdAmount::new("1.000001")),
            ..ModelPricing::default()
        });
        model.spec.retry = Some(RetryPolicy {
            server_error: Some(5),
            initial_backoff: Some(HumanDuration::new("100ms")),
            max_backoff: Some(HumanDuration::new("1m30s")),
            ..RetryPolicy::default()
        });
        model.spec.timeouts = Some(Timeouts {
            total: Some(HumanDuration::new("1h")),
            time_to_first_token: None,
        });
        model.spec.cooldown = Some(Cooldown {
            allowed_fails: Some(1),
            window: Some(HumanDuration::new("2m")),
            duration: Some(HumanDuration::new("45s")),
        });
        let compiled = compile(&Inputs {
            models: vec![model],
            ..Inputs::default()
        });
        assert_eq!(compiled.problems, []);
        let m = &compiled.snapshot.models[0];
        assert_eq!(m.strategy, Strategy::LowestCost);
        assert_eq!(m.pricing.input_micros_per_million, 150_000);
        assert_eq!(m.pricing.output_micros_per_million, 600_000);
        assert_eq!(m.deployments[0].weight, 3);
        assert_eq!(m.deployments[0].pricing, None);
        assert_eq!(
            m.deployments[1].pricing,
            Some(Pricing {
                input_micros_per_million: 150_000,
                output_micros_per_million: 1_000_001,
                cached_input_micros_per_million: 0,
            })
        );
        assert_eq!(
            (
                m.retry.server_error,
                m.retry.rate_limited,
                m.retry.initial_backoff_ms,
                m.retry.max_backoff_ms
            ),
            (5, 2, 100, 90_000)
        );
        assert_eq!(
            (m.timeouts.total_ms, m.timeouts.time_to_first_token_ms),
            (3_600_000, 60_000)
        );
        assert_eq!(
            (
                m.cooldown.allowed_fails,
                m.cooldown.window_ms,
                m.cooldown.duration_ms
            ),
            (1, 120_000, 45_000)
        );
    }

    #[test]
    fn api_keys_come_from_secrets_and_string_data_wins() {
        let model =
            LlmModel::test("gpt").with_deployments([openai("a", "openai"), openai("b", "other")]);
        let compiled = compile(&Inputs {
            models: vec![model],
            secrets: vec![
                secret("openai", &[("apiKey", "sk-from-data\n")], &[]),
                secret("other", &[("apiKey", "old")], &[("apiKey", "sk-new")]),
            ],
            ..Inputs::default()
        });
        assert_eq!(compiled.problems, []);
        let d = &compiled.snapshot.models[0].deployments;
        assert_eq!(
            d[0].api_key.as_ref().map(SecretString::expose),
            Some("sk-from-data")
        );
        assert_eq!(
            d[1].api_key.as_ref().map(SecretString::expose),
            Some("sk-new")
        );
        // The key never shows in problems or debug output.
        assert!(!format!("{compiled:?}").contains("sk-new"));
    }

    #[test]
    fn a_model_with_a_missing_secret_is_left_out_and_named() {
        let broken =
            LlmModel::test("gpt").with_deployments([openai("a", "openai"), openai("b", "missing")]);
        let nokey = LlmModel::test("nokey").with_deployments([ModelDeployment::new(
            "a",
            Provider::Groq,
            "llama",
        )
        .with_secret("openai", "wrong")]);
        let compiled = compile(&Inputs {
            models: vec![broken, nokey, LlmModel::test("chat")],
            secrets: vec![secret("openai", &[], &[("apiKey", "sk")])],
            ..Inputs::default()
        });
        let names: Vec<_> = compiled
            .snapshot
            .models
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(names, ["chat"]);
        assert_eq!(
            reasons(&compiled),
            [
                (
                    "gpt".to_owned(),
                    "spec.deployments[1].apiKeySecretRef",
                    Reason::SecretNotFound,
                    Severity::Error
                ),
                (
                    "nokey".to_owned(),
                    "spec.deployments[0].apiKeySecretRef",
                    Reason::SecretKeyMissing,
                    Severity::Error
                ),
            ]
        );
        let shown = compiled.problems[0].to_string();
        assert_eq!(
            shown,
            "LLMModel \"gpt\": spec.deployments[1].apiKeySecretRef: Secret \"missing\" not found (SecretNotFound)"
        );
        assert_eq!(compiled.problems_for(Kind::LlmModel, "gpt").count(), 1);
    }

    #[test]
    fn provider_requirements_are_checked() {
        let compiled = compile(&Inputs {
            models: vec![
                LlmModel::test("a").with_deployments([ModelDeployment::new(
                    "d",
                    Provider::Openai,
                    "m",
                )]),
                LlmModel::test("b").with_deployments([ModelDeployment::new(
                    "d",
                    Provider::OpenaiCompatible,
                    "m",
                )]),
                LlmModel::test("c").with_deployments([ModelDeployment::new(
                    "d",
                    Provider::Vllm,
                    "m",
                )
                .with_base_url("localhost:8000")]),
                LlmModel::test("d").with_deployments([
                    ModelDeployment::new("d", Provider::Ollama, "m")
                        .with_base_url("http://ollama:11434/v1"),
                    ModelDeployment::new("d", Provider::Demo, "m").with_weight(0),
                ]),
                LlmModel::test("e").with_deployments([]),
            ],
            ..Inputs::default()
        });
        assert!(compiled.snapshot.models.is_empty());
        assert_eq!(
            reasons(&compiled)
                .into_iter()
                .map(|(n, f, r, _)| (n, f.to_owned(), r))
                .collect::<Vec<_>>(),
            [
                (
                    "a".to_owned(),
                    "spec.deployments[0].apiKeySecretRef".to_owned(),
                    Reason::MissingApiKey
                ),
                (
                    "b".to_owned(),
                    "spec.deployments[0].baseUrl".to_owned(),
                    Reason::InvalidBaseUrl
                ),
                (
                    "c".to_owned(),
                    "spec.deployments[0].baseUrl".to_owned(),
                    Reason::InvalidBaseUrl
                ),
                (
                    "d".to_owned(),
                    "spec.deployments[1].name".to_owned(),
                    Reason::DuplicateDeployment
                ),
                (
                    "d".to_owned(),
                    "spec.deployments[1].weight".to_owned(),
                    Reason::InvalidWeight
                ),
                (
                    "e".to_owned(),
                    "spec.deployments".to_owned(),
                    Reason::NoDeployments
                ),
            ]
        );
    }

    #[test]
    fn bad_durations_and_prices_are_problems() {
        let mut model = LlmModel::test("chat").with_prices("0.1234567", "1");
        model.spec.timeouts = Some(Timeouts {
            total: Some(HumanDuration::new("0s")),
            time_to_first_token: Some(HumanDuration::new("ten seconds")),
        });
        let compiled = compile(&Inputs {
            models: vec![model],
            ..Inputs::default()
        });
        assert!(compiled.snapshot.models.is_empty());
        let fields: Vec<_> = compiled
            .problems
            .iter()
            .map(|p| (p.field.as_str(), p.reason))
            .collect();
        assert_eq!(
            fields,
            [
                ("spec.pricing.inputPerMillion", Reason::InvalidPrice),
                ("spec.timeouts.total", Reason::InvalidDuration),
                ("spec.timeouts.timeToFirstToken", Reason::InvalidDuration),
            ]
        );
        assert!(compiled.problems[2].message.contains("\"ten seconds\""));
    }

    #[test]
    fn fallbacks_the_sidecar_could_not_follow_are_dropped_with_a_warning() {
        let broken = LlmModel::test("broken").with_deployments([openai("a", "missing")]);
        let chat =
            LlmModel::test("chat").with_fallbacks(["backup", "ghost", "broken", "chat", "backup"]);
        let compiled = compile(&Inputs {
            models: vec![chat, broken, LlmModel::test("backup")],
            ..Inputs::default()
        });
        let chat = compiled
            .snapshot
            .models
            .iter()
            .find(|m| m.name == "chat")
            .unwrap();
        assert_eq!(chat.fallbacks, ["backup"]);
        let chat_problems: Vec<_> = compiled
            .problems_for(Kind::LlmModel, "chat")
            .map(|p| (p.field.as_str(), p.reason, p.severity))
            .collect();
        assert_eq!(
            chat_problems,
            [
                (
                    "spec.fallbacks[1]",
                    Reason::UnknownFallback,
                    Severity::Warning
                ),
                (
                    "spec.fallbacks[2]",
                    Reason::FallbackNotReady,
                    Severity::Warning
                ),
                ("spec.fallbacks[3]", Reason::SelfFallback, Severity::Warning),
            ]
        );
    }

    fn quickstart_key() -> (VirtualKey, Secret) {
        (
            VirtualKey::test("team-a")
                .with_models(["chat"])
                .with_limits(60, 1000, 2)
                .with_team("a")
                .with_budget("monthly")
                .with_expiry(1_767_225_600),
            secret(
                "team-a-key",
                &[],
                &[("key", "sk-llmesh-quickstart-0000000000000000")],
            ),
        )
    }

    #[test]
    fn virtual_keys_carry_a_hash_and_prefix_never_the_key() {
        let (key, key_secret) = quickstart_key();
        let compiled = compile(&Inputs {
            models: vec![LlmModel::test("chat")],
            keys: vec![key, VirtualKey::test("abc").with_secret_name("abc-secret")],
            budgets: vec![Budget::test("monthly", "50", ["team-a"])],
            secrets: vec![key_secret, secret("abc-secret", &[("key", "abc")], &[])],
        });
        assert_eq!(compiled.problems, []);
        let keys = &compiled.snapshot.keys;
        assert_eq!(keys[0].name, "abc");
        assert_eq!(
            keys[0].sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(keys[0].display_prefix, "a");
        let k = &keys[1];
        assert_eq!(k.display_prefix, "sk-llmesh-quic");
        assert_eq!(k.sha256.len(), 64);
        assert_eq!(k.models, ["chat"]);
        assert_eq!(
            (k.rpm, k.tpm, k.max_parallel_requests),
            (Some(60), Some(1000), Some(2))
        );
        assert_eq!(k.expires_at_unix, Some(1_767_225_600));
        assert_eq!((k.team.as_deref(), k.user.as_deref()), (Some("a"), None));
        assert_eq!(k.budget.as_deref(), Some("monthly"));
        let json = serde_json::to_string(&compiled.snapshot).unwrap();
        assert!(!json.contains("quickstart-0000"));
        assert_eq!(compiled.snapshot.budgets[0].keys, ["team-a"]);
    }

    #[test]
    fn a_key_whose_secret_is_not_generated_yet_is_left_out() {
        let (key, _) = quickstart_key();
        let compiled = compile(&Inputs {
            models: vec![LlmModel::test("chat")],
            keys: vec![key],
            ..Inputs::default()
        });
        assert!(compiled.snapshot.keys.is_empty());
        assert_eq!(
            reasons(&compiled),
            [
                (
                    "team-a".to_owned(),
                    "spec.secretName",
                    Reason::SecretNotFound,
                    Severity::Error
                ),
                (
                    "team-a".to_owned(),
                    "spec.budgetRef",
                    Reason::UnknownBudget,
                    Severity::Error
                ),
            ]
        );
        assert!(compiled.problems[0].message.contains("\"team-a-key\""));
        assert!(
            compiled.problems[0]
                .message
                .contains("not been generated yet")
        );
    }

    #[test]
    fn budgets_compile_to_micros_with_their_targets() {
        let compiled = compile(&Inputs {
            models: vec![LlmModel::test("gpt"), LlmModel::test("cheap")],
            budgets: vec![
                Budget::test("a", "100.25", ["k1"])
                    .with_models(["gpt"])
                    .with_downgrade("cheap"),
                Budget::test("b", "1", ["k1"])
                    .with_period("36h")
                    .with_downgrade("ghost"),
                Budget::test("c", "1", []),
                Budget::test("d", "1", ["k1"]).with_period("fortnightly"),
                Budget::test("e", "-1", ["k1"]),
            ],
            // k2 joins budget `a` from its side, through budgetRef.
            keys: vec![
                VirtualKey::test("k1"),
                VirtualKey::test("k2").with_budget("a"),
            ],
            secrets: vec![
                secret("k1-key", &[], &[("key", "sk-llmesh-k1-0000000000")]),
                secret("k2-key", &[], &[("key", "sk-llmesh-k2-0000000000")]),
            ],
        });
        let budgets = &compiled.snapshot.budgets;
        assert_eq!(budgets.len(), 2);
        assert_eq!(
            budgets[0],
            BudgetSpec {
                name: "a".to_owned(),
                limit_micros: 100_250_000,
                keys: vec!["k1".to_owned(), "k2".to_owned()],
                models: vec!["gpt".to_owned()],
                downgrade_to: Some("cheap".to_owned()),
            }
        );
        assert_eq!(budgets[1].downgrade_to, None);
        assert_eq!(
            reasons(&compiled),
            [
                (
                    "b".to_owned(),
                    "spec.action.downgradeTo",
                    Reason::UnknownModel,
                    Severity::Warning
                ),
                (
                    "c".to_owned(),
                    "spec.selector",
                    Reason::EmptySelector,
                    Severity::Error
                ),
                (
                    "d".to_owned(),
                    "spec.period",
                    Reason::InvalidPeriod,
                    Severity::Error
                ),
                (
                    "e".to_owned(),
                    "spec.limit",
                    Reason::InvalidPrice,
                    Severity::Error
                ),
            ]
        );
    }

    #[test]
    fn output_is_sorted_and_versions_follow_content() {
        let inputs = Inputs {
            models: vec![
                LlmModel::test("b"),
                LlmModel::test("a"),
                LlmModel::test("c"),
            ],
            ..Inputs::default()
        };
        let first = compile(&inputs);
        let names: Vec<_> = first
            .snapshot
            .models
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(names, ["a", "b", "c"]);

        let mut reordered = inputs.clone();
        reordered.models.reverse();
        assert_eq!(compile(&reordered), first);

        let mut changed = inputs;
        changed.models[0].spec.deployments[0].weight = 2;
        let second = compile(&changed);
        assert_ne!(second.snapshot.version, first.snapshot.version);
        assert!(
            second
                .snapshot
                .version
                .bytes()
                .all(|b| b.is_ascii_hexdigit())
        );
    }

    #[test]
    fn duplicate_and_nameless_resources_are_problems() {
        let mut nameless = LlmModel::test("x");
        nameless.metadata.name = None;
        let compiled = compile(&Inputs {
            models: vec![LlmModel::test("a"), LlmModel::test("a"), nameless],
            ..Inputs::default()
        });
        assert_eq!(compiled.snapshot.models.len(), 1);
        let found: Vec<_> = compiled.problems.iter().map(|p| p.reason).collect();
        assert_eq!(found, [Reason::MissingName, Reason::DuplicateName]);
    }

    #[test]
    fn display_prefixes_never_show_a_short_key_whole() {
        assert_eq!(
            display_prefix("sk-llmesh-abcdefghijklmnopqrstuvwxyz"),
            "sk-llmesh-abcd"
        );
        assert_eq!(display_prefix("short-key"), "shor");
        assert_eq!(display_prefix("x"), "");
    }

    #[test]
    fn http_urls_are_recognised() {
        assert!(is_http_url("https://api.example.com/v1"));
        assert!(is_http_url("http://10.0.0.1:8000"));
        for bad in [
            "ftp://x",
            "https://",
            "localhost:8000",
            "https:///path",
            "http://a b",
        ] {
            assert!(!is_http_url(bad), "{bad}");
        }
    }
}

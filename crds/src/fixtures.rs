//! Builder-style test fixtures: `LlmModel::test("chat").with_fallbacks(["backup"])`.
//!
//! Compiled for this crate's tests and, behind the `test-util` feature, for other
//! crates' tests; never part of a release build.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::{
    Budget, BudgetSpec, LlmModel, LlmModelSpec, VirtualKey, VirtualKeySpec,
    budget::{BudgetAction, BudgetActionType, BudgetSelector},
    llm_model::{
        ModelDeployment, ModelPricing, Provider, RoutingStrategy, UpstreamTls, WorkloadIdentity,
    },
    shared::{ConfigMapKeyRef, HumanDuration, PeriodSpec, SecretKeyRef, UsdAmount},
    virtual_key::KeyLimits,
};

/// The namespace fixtures live in.
pub const NAMESPACE: &str = "default";

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(NAMESPACE.to_owned()),
        generation: Some(1),
        ..ObjectMeta::default()
    }
}

impl LlmModel {
    /// A model with one `demo` deployment `d0` serving upstream model `echo`.
    pub fn test(name: &str) -> Self {
        LlmModel {
            metadata: meta(name),
            spec: LlmModelSpec {
                strategy: RoutingStrategy::default(),
                deployments: vec![ModelDeployment::new("d0", Provider::Demo, "echo")],
                fallbacks: Vec::new(),
                context_window_fallbacks: Vec::new(),
                content_policy_fallbacks: Vec::new(),
                retry: None,
                timeouts: None,
                cooldown: None,
                pricing: None,
                cache: None,
                telemetry: None,
                drop_unsupported_params: false,
                default_max_tokens: None,
                image_fetch: None,
            },
            status: None,
        }
    }

    /// Replaces the deployments.
    pub fn with_deployments(
        mut self,
        deployments: impl IntoIterator<Item = ModelDeployment>,
    ) -> Self {
        self.spec.deployments = deployments.into_iter().collect();
        self
    }

    /// Sets the strategy.
    pub fn with_strategy(mut self, strategy: RoutingStrategy) -> Self {
        self.spec.strategy = strategy;
        self
    }

    /// Sets the ordinary fallbacks.
    pub fn with_fallbacks<'a>(mut self, names: impl IntoIterator<Item = &'a str>) -> Self {
        self.spec.fallbacks = names.into_iter().map(str::to_owned).collect();
        self
    }

    /// Sets the model's input and output prices (USD per million tokens).
    pub fn with_prices(mut self, input: &str, output: &str) -> Self {
        self.spec.pricing = Some(ModelPricing {
            input_per_million: Some(UsdAmount::new(input)),
            output_per_million: Some(UsdAmount::new(output)),
            cached_input_per_million: None,
            cache_write_input_per_million: None,
        });
        self
    }
}

impl ModelDeployment {
    /// Sets the weight.
    pub fn with_weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// Sets the API key reference.
    pub fn with_secret(mut self, name: &str, key: &str) -> Self {
        self.api_key_secret_ref = Some(SecretKeyRef::new(name, key));
        self
    }

    /// Sets the base URL.
    pub fn with_base_url(mut self, url: &str) -> Self {
        self.base_url = Some(url.to_owned());
        self
    }

    /// Trusts the PEM CA certificates in `key` of ConfigMap `name`.
    pub fn with_ca_config_map(mut self, name: &str, key: &str) -> Self {
        let tls = self.tls.get_or_insert_with(UpstreamTls::default);
        tls.ca_config_map_ref = Some(ConfigMapKeyRef::new(name, key));
        self
    }

    /// Trusts the PEM CA certificates in `key` of Secret `name`.
    pub fn with_ca_secret(mut self, name: &str, key: &str) -> Self {
        let tls = self.tls.get_or_insert_with(UpstreamTls::default);
        tls.ca_secret_ref = Some(SecretKeyRef::new(name, key));
        self
    }

    /// Sets the region.
    pub fn with_region(mut self, region: &str) -> Self {
        self.region = Some(region.to_owned());
        self
    }

    /// Authenticates with the pod's cloud identity.
    pub fn with_workload_identity(mut self, identity: WorkloadIdentity) -> Self {
        self.workload_identity = Some(identity);
        self
    }
}

impl VirtualKey {
    /// A key with no limits whose Secret is the default `<name>-key`.
    pub fn test(name: &str) -> Self {
        VirtualKey {
            metadata: meta(name),
            spec: VirtualKeySpec::default(),
            status: None,
        }
    }

    /// Restricts the key to these models.
    pub fn with_models<'a>(mut self, names: impl IntoIterator<Item = &'a str>) -> Self {
        self.spec.models = names.into_iter().map(str::to_owned).collect();
        self
    }

    /// Sets the rpm, tpm and parallel limits.
    pub fn with_limits(mut self, rpm: u32, tpm: u64, parallel: u32) -> Self {
        self.spec.limits = Some(KeyLimits {
            rpm: Some(rpm),
            tpm: Some(tpm),
            max_parallel_requests: Some(parallel),
        });
        self
    }

    /// Sets the team label.
    pub fn with_team(mut self, team: &str) -> Self {
        self.spec.team = Some(team.to_owned());
        self
    }

    /// Sets the budget.
    pub fn with_budget(mut self, budget: &str) -> Self {
        self.spec.budget_ref = Some(budget.to_owned());
        self
    }

    /// Sets the expiry from Unix seconds.
    pub fn with_expiry(mut self, unix_seconds: i64) -> Self {
        self.spec.expires_at = k8s_openapi::jiff::Timestamp::from_second(unix_seconds)
            .ok()
            .map(Time);
        self
    }

    /// Sets the Secret name.
    pub fn with_secret_name(mut self, name: &str) -> Self {
        self.spec.secret_name = Some(name.to_owned());
        self
    }
}

impl Budget {
    /// A monthly `limit` USD budget over the given keys, rejecting once exhausted.
    pub fn test<'a>(name: &str, limit: &str, keys: impl IntoIterator<Item = &'a str>) -> Self {
        Budget {
            metadata: meta(name),
            spec: BudgetSpec {
                limit: UsdAmount::new(limit),
                period: PeriodSpec::new("monthly"),
                time_zone: "UTC".to_owned(),
                selector: BudgetSelector {
                    keys: keys.into_iter().map(str::to_owned).collect(),
                    models: Vec::new(),
                },
                alert_thresholds: vec![80, 100],
                action: None,
            },
            status: None,
        }
    }

    /// Selects these models too.
    pub fn with_models<'a>(mut self, names: impl IntoIterator<Item = &'a str>) -> Self {
        self.spec.selector.models = names.into_iter().map(str::to_owned).collect();
        self
    }

    /// Sets the period.
    pub fn with_period(mut self, period: &str) -> Self {
        self.spec.period = PeriodSpec::new(period);
        self
    }

    /// Downgrades to `model` once exhausted.
    pub fn with_downgrade(mut self, model: &str) -> Self {
        self.spec.action = Some(BudgetAction {
            kind: BudgetActionType::Downgrade,
            downgrade_to: Some(model.to_owned()),
        });
        self
    }
}

/// A duration fixture.
pub fn duration(text: &str) -> HumanDuration {
    HumanDuration::new(text)
}

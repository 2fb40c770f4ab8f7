//! Tests of the `LLMModel` resource: its schema, CEL rules, printer columns and
//! round trips.

use kube::CustomResourceExt;

use super::*;
use crate::test_support::{cel_failures, cel_rules, crd_json, printer_columns, round_trip};

#[test]
fn crd_names_and_columns() {
    let crd = LlmModel::crd();
    assert_eq!(crd.metadata.name.as_deref(), Some("llmmodels.llmesh.io"));
    assert_eq!(crd.spec.names.kind, "LLMModel");
    assert_eq!(crd.spec.names.short_names, Some(vec!["llm".to_owned()]));
    assert_eq!(crd.spec.scope, "Namespaced");
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(version.subresources.as_ref().unwrap().status.is_some());
    let names: Vec<_> = printer_columns::<LlmModel>()
        .into_iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(names[..4], ["Ready", "Strategy", "Deployments", "Age"]);
}

#[test]
fn schema_carries_the_cel_rules_and_defaults() {
    let rules = cel_rules::<LlmModel>();
    for needle in [
        "self.metadata.name in self.spec.fallbacks",
        "self.metadata.name in self.spec.contextWindowFallbacks",
        "self.metadata.name in self.spec.contentPolicyFallbacks",
        "self.all(d, self.exists_one(e, e.name == d.name))",
        "has(self.baseUrl)",
        "duration(self) >= duration('0s')",
        "self.matches('^[0-9]{1,9}([.][0-9]{1,6})?$')",
    ] {
        assert!(
            rules.iter().any(|r| r.contains(needle)),
            "missing {needle}: {rules:#?}"
        );
    }
    let spec = &crd_json::<LlmModel>()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
        ["spec"];
    assert_eq!(
        spec["properties"]["strategy"]["default"],
        "weighted-shuffle"
    );
    let deployments = &spec["properties"]["deployments"];
    assert_eq!(deployments["minItems"], 1);
    assert_eq!(deployments["x-kubernetes-list-type"], "map");
    assert_eq!(deployments["items"]["properties"]["weight"]["default"], 1);
    assert_eq!(deployments["items"]["properties"]["weight"]["minimum"], 1.0);
    assert!(
        spec["properties"]["retry"]["description"]
            .as_str()
            .unwrap()
            .contains("defaults")
    );
}

fn model() -> LlmModel {
    LlmModel::test("chat")
        .with_fallbacks(["backup"])
        .with_prices("0.15", "0.60")
}

#[test]
fn a_valid_model_passes_cel() {
    let mut model = model();
    model.spec.deployments.push(
        ModelDeployment::new("azure", Provider::Azure, "gpt4o")
            .with_base_url("https://example.openai.azure.com")
            .with_secret("azure", "apiKey"),
    );
    model.spec.retry = Some(RetryPolicy {
        initial_backoff: Some(HumanDuration::new("1h30m")),
        ..RetryPolicy::default()
    });
    assert_eq!(cel_failures(&model), Vec::<String>::new());
}

#[test]
fn cel_refuses_self_fallback_duplicates_and_missing_base_url() {
    let model = model().with_fallbacks(["chat"]);
    assert_eq!(
        cel_failures(&model),
        ["spec.fallbacks must not name the model itself"]
    );

    let model = LlmModel::test("chat").with_deployments([
        ModelDeployment::new("a", Provider::Demo, "echo"),
        ModelDeployment::new("a", Provider::Demo, "echo"),
    ]);
    assert_eq!(
        cel_failures(&model),
        ["deployment names must be unique within the model"]
    );

    let model = LlmModel::test("chat").with_deployments([ModelDeployment::new(
        "a",
        Provider::OpenaiCompatible,
        "m",
    )]);
    assert_eq!(
        cel_failures(&model),
        ["baseUrl is required for the azure and openai-compatible providers"]
    );

    let model = LlmModel::test("chat").with_deployments([ModelDeployment::new(
        "a",
        Provider::Openai,
        "gpt-4o-mini",
    )]);
    assert_eq!(
        cel_failures(&model),
        [
            "apiKeySecretRef is required for hosted providers (bedrock: or awsCredentialsSecretRef; vertex: serviceAccountSecretRef; bedrock, vertex and azure: or workloadIdentity)"
        ]
    );

    let model =
        LlmModel::test("chat").with_deployments([
            ModelDeployment::new("a", Provider::Vllm, "m").with_base_url("ftp://x")
        ]);
    assert_eq!(cel_failures(&model), ["must be an http or https URL"]);
}

#[test]
fn tls_names_a_ca_or_the_system_store() {
    let vllm =
        || ModelDeployment::new("a", Provider::Vllm, "m").with_base_url("https://vllm.internal");
    let with = |tls: UpstreamTls| {
        let mut d = vllm();
        d.tls = Some(tls);
        LlmModel::test("chat").with_deployments([d])
    };
    assert_eq!(
        cel_failures(&with(UpstreamTls::default())),
        ["tls needs caSecretRef, caConfigMapRef or systemRoots: true"]
    );
    for tls in [
        UpstreamTls {
            ca_config_map_ref: Some(ConfigMapKeyRef::new("internal-ca", "ca.crt")),
            ..UpstreamTls::default()
        },
        UpstreamTls {
            ca_secret_ref: Some(SecretKeyRef::new("internal-ca", "ca.crt")),
            ..UpstreamTls::default()
        },
        UpstreamTls {
            system_roots: true,
            ..UpstreamTls::default()
        },
    ] {
        let model = with(tls);
        assert_eq!(cel_failures(&model), Vec::<String>::new());
        assert_eq!(round_trip(&model), model);
    }
    let yaml = "
apiVersion: llmesh.io/v1alpha1
kind: LLMModel
metadata: {name: m}
spec:
  deployments:
  - name: d
    provider: vllm
    model: x
    baseUrl: https://vllm.internal/v1
    tls:
      caConfigMapRef: {name: internal-ca, key: ca.crt}
";
    let parsed: LlmModel = serde_saphyr::from_str(yaml).unwrap();
    let tls = parsed.spec.deployments[0].tls.clone().unwrap();
    assert_eq!(
        tls.ca_config_map_ref,
        Some(ConfigMapKeyRef::new("internal-ca", "ca.crt"))
    );
    assert!(!tls.system_roots);
}

#[test]
fn workload_identity_needs_no_secret_and_must_suit_the_provider() {
    let with = |d: ModelDeployment| LlmModel::test("chat").with_deployments([d]);
    let bedrock = ModelDeployment::new("b", Provider::Bedrock, "anthropic.claude")
        .with_region("us-east-1")
        .with_workload_identity(WorkloadIdentity::AwsWebIdentity);
    assert_eq!(cel_failures(&with(bedrock.clone())), Vec::<String>::new());
    let pod = bedrock
        .clone()
        .with_workload_identity(WorkloadIdentity::AwsPodIdentity);
    assert_eq!(cel_failures(&with(pod)), Vec::<String>::new());
    let vertex = ModelDeployment::new("v", Provider::Vertex, "gemini-2.5-pro")
        .with_region("us-central1")
        .with_workload_identity(WorkloadIdentity::GcpMetadata);
    assert_eq!(cel_failures(&with(vertex.clone())), Vec::<String>::new());
    let azure = ModelDeployment::new("a", Provider::Azure, "gpt4o")
        .with_base_url("https://res.openai.azure.com")
        .with_workload_identity(WorkloadIdentity::AzureWorkloadIdentity);
    assert_eq!(cel_failures(&with(azure.clone())), Vec::<String>::new());

    let wrong = azure
        .clone()
        .with_workload_identity(WorkloadIdentity::GcpMetadata);
    assert_eq!(
        cel_failures(&with(wrong)),
        [
            "workloadIdentity must suit the provider: aws-web-identity or aws-pod-identity for bedrock, gcp-metadata or gcp-external-account for vertex, azure-workload-identity for azure"
        ]
    );
    let openai = ModelDeployment::new("o", Provider::Openai, "gpt-4o")
        .with_workload_identity(WorkloadIdentity::AzureWorkloadIdentity);
    assert_eq!(cel_failures(&with(openai)).len(), 1);
    let both = bedrock.with_secret("aws", "key");
    assert_eq!(
        cel_failures(&with(both)),
        [
            "workloadIdentity replaces apiKeySecretRef, awsCredentialsSecretRef, tokenUrl and serviceAccountSecretRef (which, with gcp-external-account, may hold the credential configuration)"
        ]
    );
    let mut keyed = vertex.clone();
    keyed.service_account_secret_ref = Some(crate::shared::SecretKeyRef::new("sa", "key.json"));
    assert_eq!(cel_failures(&with(keyed.clone())).len(), 1);
    let federated = keyed.with_workload_identity(WorkloadIdentity::GcpExternalAccount);
    assert_eq!(
        cel_failures(&with(federated.clone())),
        ["project is required with workloadIdentity gcp-external-account"]
    );
    let mut federated = federated;
    federated.project = Some("my-project".into());
    assert_eq!(cel_failures(&with(federated)), Vec::<String>::new());
    assert_eq!(
        serde_json::to_value(WorkloadIdentity::GcpExternalAccount).unwrap(),
        serde_json::Value::from(WorkloadIdentity::GcpExternalAccount.as_str())
    );
    assert_eq!(
        WorkloadIdentity::AzureWorkloadIdentity.provider(),
        Provider::Azure
    );
}

#[test]
fn cel_refuses_bad_durations_and_prices() {
    let mut model = model();
    model.spec.cooldown = Some(Cooldown {
        window: Some(HumanDuration::new("5 minutes")),
        ..Cooldown::default()
    });
    assert_eq!(
        cel_failures(&model),
        ["must be a duration like 250ms, 30s, 5m or 1h30m"]
    );

    let model = LlmModel::test("chat").with_prices("-1", "0.1234567");
    assert_eq!(cel_failures(&model).len(), 2);
}

#[test]
fn cel_checks_image_fetch() {
    let mut model = model();
    model.spec.image_fetch = Some(ImageFetch {
        allowed_hosts: vec!["images.example.com".into(), "*.cdn.example.com:8443".into()],
        allow_private_addresses: vec!["10.20.0.0/16".into(), "fd00::1".into()],
        timeout: Some(HumanDuration::new("5s")),
        ..ImageFetch::default()
    });
    assert_eq!(cel_failures(&model), Vec::<String>::new());
    model.spec.image_fetch = Some(ImageFetch {
        allow_private_addresses: vec!["10.20.0.0/16".into(), "ten.twenty/16".into()],
        ..ImageFetch::default()
    });
    assert_eq!(
        cel_failures(&model),
        ["allowPrivateAddresses entries must be CIDR ranges or IP addresses"]
    );
    let spec = &crd_json::<LlmModel>()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
        ["spec"]["properties"]["imageFetch"]["properties"];
    assert_eq!(spec["allowedHosts"]["items"]["pattern"], HOST_RULE_PATTERN);
    assert_eq!(spec["maxBytes"]["maximum"], 67_108_864.0);
}

#[test]
fn round_trips_and_defaults() {
    let model = model();
    assert_eq!(round_trip(&model), model);

    let yaml = "
apiVersion: llmesh.io/v1alpha1
kind: LLMModel
metadata: {name: m}
spec:
  deployments:
  - {name: d, provider: openai-compatible, model: x, baseUrl: 'http://h'}
";
    let parsed: LlmModel = serde_saphyr::from_str(yaml).unwrap();
    assert_eq!(parsed.spec.strategy, RoutingStrategy::WeightedShuffle);
    assert_eq!(parsed.spec.deployments[0].weight, 1);
    assert_eq!(
        parsed.spec.deployments[0].provider,
        Provider::OpenaiCompatible
    );
    assert!(parsed.spec.fallbacks.is_empty());
    assert_eq!(parsed.spec.retry, None);
}

#[test]
fn provider_names_match_serde() {
    for provider in [Provider::Openai, Provider::OpenaiCompatible, Provider::Demo] {
        assert_eq!(
            serde_json::to_value(provider).unwrap(),
            serde_json::Value::from(provider.as_str())
        );
    }
}

#[test]
fn cel_checks_the_cache_limits() {
    let with = |cache: CacheSpec| {
        let mut model = LlmModel::test("chat");
        model.spec.cache = Some(cache);
        cel_failures(&model)
    };
    let ttl = |t: &str| Some(HumanDuration::new(t));
    assert_eq!(
        with(CacheSpec {
            ttl: ttl("10m"),
            max_entries: Some(100),
            max_bytes: Some(1 << 20),
            max_entry_bytes: Some(1 << 20),
        }),
        Vec::<String>::new()
    );
    assert_eq!(with(CacheSpec::default()), ["cache needs a ttl"]);
    assert_eq!(
        with(CacheSpec {
            ttl: ttl("169h"),
            ..CacheSpec::default()
        }),
        ["ttl must be more than 0s and at most 168h"]
    );
    assert_eq!(
        with(CacheSpec {
            ttl: ttl("0s"),
            ..CacheSpec::default()
        }),
        ["ttl must be more than 0s and at most 168h"]
    );
    assert_eq!(
        with(CacheSpec {
            ttl: ttl("1h"),
            max_bytes: Some(4096),
            max_entry_bytes: Some(8192),
            ..CacheSpec::default()
        }),
        ["maxEntryBytes must not exceed maxBytes (default 16777216)"]
    );
    assert_eq!(
        with(CacheSpec {
            ttl: ttl("1h"),
            max_entry_bytes: Some(16_777_217),
            ..CacheSpec::default()
        }),
        ["maxEntryBytes must not exceed maxBytes (default 16777216)"]
    );
}

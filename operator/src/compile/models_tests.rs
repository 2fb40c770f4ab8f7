//! Tests of [`super`]: models through the whole compiler, as the sidecar will see them.

use llmesh_crds::{
    llm_model::{Cooldown, ModelPricing, RetryPolicy, RoutingStrategy, Timeouts},
    shared::{HumanDuration, SecretKeyRef, UsdAmount},
};

use super::*;
use crate::compile::fixtures::{model_names, openai, reasons, secret};
use crate::compile::{Inputs, Kind, Severity, compile};

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
        cached_input_per_million: Some(UsdAmount::new("0.015")),
        cache_write_input_per_million: Some(UsdAmount::new("0.1875")),
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
            cached_input_micros_per_million: 15_000,
            cache_write_input_micros_per_million: 187_500,
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
    assert_eq!(model_names(&compiled), ["chat"]);
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
            LlmModel::test("c").with_deployments([
                ModelDeployment::new("d", Provider::Vllm, "m").with_base_url("localhost:8000")
            ]),
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

#[test]
fn a_regional_provider_without_a_region_has_its_own_reason() {
    let mut bedrock =
        ModelDeployment::new("d", Provider::Bedrock, "m").with_secret("aws", "apiKey");
    let compiled = compile(&Inputs {
        models: vec![LlmModel::test("a").with_deployments([bedrock.clone()])],
        secrets: vec![secret("aws", &[("apiKey", "k")], &[])],
        ..Inputs::default()
    });
    let found: Vec<_> = compiled
        .problems_for(Kind::LlmModel, "a")
        .map(|p| (p.field.as_str(), p.reason, p.severity))
        .collect();
    let region = ("spec.deployments[0].region", Reason::MissingRegion);
    assert_eq!(found, [(region.0, region.1, Severity::Error)]);
    assert!(model_names(&compiled).is_empty());
    assert_eq!(compiled.problems[0].reason.as_str(), "MissingRegion");

    bedrock.region = Some("us-east-1".to_owned());
    let compiled = compile(&Inputs {
        models: vec![LlmModel::test("a").with_deployments([bedrock])],
        secrets: vec![secret("aws", &[("apiKey", "k")], &[])],
        ..Inputs::default()
    });
    assert_eq!(compiled.problems, []);
    assert_eq!(
        compiled.snapshot.models[0].deployments[0].region.as_deref(),
        Some("us-east-1")
    );
}

/// The CRD's provider names and the sidecar's are one list: each provider maps to the
/// sidecar kind that serializes to the same name.
#[test]
fn every_provider_maps_to_the_kind_of_its_name() {
    use kube::CustomResourceExt;
    // Every provider the API accepts, from the CRD's own schema.
    let crd = serde_json::to_value(LlmModel::crd()).unwrap();
    let names = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["deployments"]["items"]["properties"]["provider"]["enum"];
    let all: Vec<Provider> = serde_json::from_value(names.clone()).unwrap();
    assert_eq!(all.len(), 18);
    for p in all {
        let kind = provider(p);
        assert_eq!(
            serde_json::to_value(kind).unwrap(),
            serde_json::to_value(p).unwrap(),
            "{p:?}"
        );
    }
}

#[test]
fn a_deployments_ca_is_resolved_into_the_snapshot_or_keeps_the_model_out() {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = params
        .self_signed(&rcgen::KeyPair::generate().unwrap())
        .unwrap()
        .pem();
    let vllm = |model: &str| {
        LlmModel::test(model).with_deployments([ModelDeployment::new(
            "internal",
            Provider::Vllm,
            "llama",
        )
        .with_base_url("https://vllm.internal/v1")
        .with_ca_config_map("internal-ca", "ca.crt")])
    };
    let mut broken = vllm("broken");
    broken.spec.deployments[0] = broken.spec.deployments[0]
        .clone()
        .with_ca_secret("not-a-ca", "ca.crt");
    let compiled = compile(&Inputs {
        models: vec![vllm("chat"), broken],
        secrets: vec![secret("not-a-ca", &[("ca.crt", "hello")], &[])],
        config_maps: vec![crate::compile::fixtures::config_map(
            "internal-ca",
            &[("ca.crt", &ca)],
        )],
        ..Inputs::default()
    });
    assert_eq!(model_names(&compiled), ["chat"]);
    let tls = compiled.snapshot.models[0].deployments[0]
        .tls
        .clone()
        .unwrap();
    assert_eq!(tls.ca_certificates.len(), 1);
    assert!(tls.ca_certificates[0].starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert_eq!(
        reasons(&compiled),
        [(
            "broken".to_owned(),
            "spec.deployments[0].tls.caSecretRef",
            Reason::InvalidCaCertificate,
            Severity::Error
        )]
    );
    assert_eq!(
        compiled.config_maps_used.iter().collect::<Vec<_>>(),
        ["internal-ca"]
    );
    assert!(compiled.secrets_used.contains("not-a-ca"));
}

/// With `workloadIdentity`, no key Secret is needed and none may be set; the identity
/// reaches the snapshot under the sidecar's name for it.
#[test]
fn workload_identity_compiles_without_a_secret() {
    let deployments = [
        ModelDeployment::new("b", Provider::Bedrock, "anthropic.claude")
            .with_region("us-east-1")
            .with_workload_identity(WorkloadIdentity::AwsWebIdentity),
        ModelDeployment::new("p", Provider::Bedrock, "anthropic.claude")
            .with_region("us-east-1")
            .with_workload_identity(WorkloadIdentity::AwsPodIdentity),
        ModelDeployment::new("v", Provider::Vertex, "gemini-2.5-pro")
            .with_region("us-central1")
            .with_workload_identity(WorkloadIdentity::GcpMetadata),
        ModelDeployment::new("a", Provider::Azure, "gpt4o")
            .with_base_url("https://res.openai.azure.com")
            .with_workload_identity(WorkloadIdentity::AzureWorkloadIdentity),
    ];
    let compiled = compile(&Inputs {
        models: vec![LlmModel::test("chat").with_deployments(deployments)],
        ..Inputs::default()
    });
    assert_eq!(compiled.problems, []);
    let identities: Vec<_> = compiled.snapshot.models[0]
        .deployments
        .iter()
        .map(|d| (d.workload_identity, d.api_key.is_none() && d.aws.is_none()))
        .collect();
    assert_eq!(
        identities,
        [
            (Some(snapshot::WorkloadIdentity::AwsWebIdentity), true),
            (Some(snapshot::WorkloadIdentity::AwsPodIdentity), true),
            (Some(snapshot::WorkloadIdentity::GcpMetadata), true),
            (
                Some(snapshot::WorkloadIdentity::AzureWorkloadIdentity),
                true
            ),
        ]
    );
}

#[test]
fn workload_identity_refuses_other_providers_secrets_and_a_missing_project() {
    let mut federated = ModelDeployment::new("f", Provider::Vertex, "gemini-2.5-pro")
        .with_region("us-central1")
        .with_workload_identity(WorkloadIdentity::GcpExternalAccount);
    federated.service_account_secret_ref = Some(SecretKeyRef::new("wif", "config.json"));
    let deployments = [
        ModelDeployment::new("o", Provider::Openai, "gpt-4o")
            .with_workload_identity(WorkloadIdentity::AzureWorkloadIdentity),
        ModelDeployment::new("b", Provider::Bedrock, "anthropic.claude")
            .with_region("us-east-1")
            .with_secret("aws", "apiKey")
            .with_workload_identity(WorkloadIdentity::AwsWebIdentity),
        federated.clone(),
    ];
    let compiled = compile(&Inputs {
        models: vec![LlmModel::test("chat").with_deployments(deployments)],
        secrets: vec![
            secret("aws", &[("apiKey", "k")], &[]),
            secret("wif", &[("config.json", "{}")], &[]),
        ],
        ..Inputs::default()
    });
    let found: Vec<_> = reasons(&compiled)
        .into_iter()
        .map(|(_, field, reason, _)| (field.to_owned(), reason))
        .collect();
    let bad = Reason::InvalidWorkloadIdentity;
    assert_eq!(
        found,
        [
            ("spec.deployments[0].workloadIdentity".to_owned(), bad),
            ("spec.deployments[1].apiKeySecretRef".to_owned(), bad),
            ("spec.deployments[2].project".to_owned(), bad),
        ]
    );
    assert!(model_names(&compiled).is_empty());

    // The Secret of a gcp-external-account deployment is its credential configuration.
    federated.project = Some("my-project".into());
    let compiled = compile(&Inputs {
        models: vec![LlmModel::test("chat").with_deployments([federated])],
        secrets: vec![secret(
            "wif",
            &[("config.json", "{\"type\":\"external_account\"}")],
            &[],
        )],
        ..Inputs::default()
    });
    assert_eq!(compiled.problems, []);
    let d = &compiled.snapshot.models[0].deployments[0];
    assert_eq!(
        d.gcp_service_account
            .as_ref()
            .map(|s| s.expose().to_owned()),
        Some("{\"type\":\"external_account\"}".to_owned())
    );
}

//! Azure OpenAI: one URL per deployment
//! (`{base}/openai/deployments/{deployment}/chat/completions?api-version=...`) and the
//! key in an `api-key` header, or with `workloadIdentity: azure-workload-identity` an
//! Entra ID token as `Authorization: Bearer` (see `identity::azure`). Bodies are OpenAI's; Azure's content-filter answers
//! (`finish_reason: "content_filter"`, `content_filter_results`) pass through, and its
//! errors (`"type": null` on content-filter refusals) are given OpenAI's shape.

use std::sync::Arc;

use super::openai::OpenAiCompat;
use super::{BuildError, Credential, Prepared, ProviderContext, api_key, join};
use crate::config::snapshot::{DeploymentSpec, WorkloadIdentity};
use crate::domain::Endpoint;

/// The GA data-plane API version used when the deployment names none.
pub const DEFAULT_API_VERSION: &str = "2024-10-21";

/// Dialect and credential (`api-key`, or an Entra ID token) for an Azure OpenAI
/// deployment.
pub fn build(spec: &DeploymentSpec, ctx: &ProviderContext) -> Result<Prepared, BuildError> {
    let base = spec.base_url.as_deref().ok_or(BuildError::Missing(
        "baseUrl is required for azure (https://RESOURCE.openai.azure.com)",
    ))?;
    if spec.model.is_empty() || spec.model.contains(['/', '?', '#']) {
        return Err("model must be the Azure deployment name".into());
    }
    let version = spec.api_version.as_deref().unwrap_or(DEFAULT_API_VERSION);
    if !version
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(format!("apiVersion {version:?} is not a valid api-version").into());
    }
    let query = format!("api-version={version}");
    // The Responses API lives at Azure's v1 path, with the deployment as `model`.
    let responses = Some(join(
        base.trim_end_matches('/'),
        "/openai/v1/responses",
        None,
    )?);
    let base = format!(
        "{}/openai/deployments/{}",
        base.trim_end_matches('/'),
        spec.model
    );
    let [a, b, c] = Endpoint::OPENAI.map(|e| join(&base, e.path(), Some(&query)));
    let credential = match spec.workload_identity {
        None => Credential::key_header("api-key", api_key(spec, "apiKey is required for azure")?)?,
        Some(WorkloadIdentity::AzureWorkloadIdentity) if spec.api_key.is_none() => {
            Credential::Bearer(super::identity::azure::source(ctx))
        }
        Some(WorkloadIdentity::AzureWorkloadIdentity) => {
            return Err("workloadIdentity replaces apiKeySecretRef: set one".into());
        }
        Some(other) => {
            return Err(format!(
                "workloadIdentity {} does not apply to azure (azure-workload-identity does)",
                other.as_str()
            )
            .into());
        }
    };
    Ok(Prepared {
        dialect: Arc::new(OpenAiCompat {
            uris: [a?, b?, c?],
            responses,
        }),
        credential,
    })
}

#[cfg(test)]
mod tests {
    use crate::provider::test_support;
    use serde_json::Map;

    use super::*;
    use crate::config::snapshot::{ProviderKind, SecretString};
    use crate::provider::spec;
    use crate::provider::test_support::offline;

    #[test]
    fn builds_deployment_urls_with_api_version_and_api_key() {
        let mut s = spec(ProviderKind::Azure);
        s.base_url = Some("https://res.openai.azure.com/".into());
        s.model = "gpt4o-prod".into();
        s.api_key = Some(SecretString::new("azkey"));
        let p = build(&s, &offline()).unwrap();
        let body = Map::new();
        let call = test_support::view(Endpoint::ChatCompletions, &body, false, "gpt4o-prod");
        assert_eq!(
            p.dialect.request(&call).unwrap().uri().to_string(),
            "https://res.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"
        );
        let Credential::Header(name, value) = &p.credential else {
            panic!("no credential")
        };
        assert_eq!(name.as_str(), "api-key");
        assert_eq!(value.to_str().unwrap(), "azkey");
    }

    #[test]
    fn requires_base_url_and_key() {
        let mut s = spec(ProviderKind::Azure);
        let ctx = offline();
        assert!(
            build(&s, &ctx)
                .err()
                .unwrap()
                .to_string()
                .contains("baseUrl")
        );
        s.base_url = Some("https://res.openai.azure.com".into());
        assert!(
            build(&s, &ctx)
                .err()
                .unwrap()
                .to_string()
                .contains("apiKey")
        );
        s.api_key = Some(SecretString::new("k"));
        s.api_version = Some("2024-10-21&x=1".into());
        assert!(build(&s, &ctx).is_err());
    }

    #[tokio::test]
    async fn workload_identity_replaces_the_key_with_an_entra_token() {
        let mut s = spec(ProviderKind::Azure);
        s.base_url = Some("https://res.openai.azure.com".into());
        s.workload_identity = Some(WorkloadIdentity::AzureWorkloadIdentity);
        // This pod has no Entra variables: the deployment builds, its calls say why not.
        let p = build(&s, &offline()).unwrap();
        let Credential::Bearer(tokens) = &p.credential else {
            panic!("not a bearer credential: {:?}", p.credential)
        };
        let err = tokens.lease().await.unwrap_err().to_string();
        assert!(err.contains("AZURE_CLIENT_ID"), "{err}");
        s.api_key = Some(SecretString::new("k"));
        assert!(build(&s, &offline()).is_err());
        s.api_key = None;
        s.workload_identity = Some(WorkloadIdentity::GcpMetadata);
        assert!(build(&s, &offline()).is_err());
    }
}

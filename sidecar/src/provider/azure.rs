//! Azure OpenAI: one URL per deployment
//! (`{base}/openai/deployments/{deployment}/chat/completions?api-version=...`) and the
//! key in an `api-key` header. The body is OpenAI's; Azure ignores its `model`.

use http::header::HeaderName;

use super::{Endpoint, Prepared, join, secret_header};
use crate::config::snapshot::DeploymentSpec;

/// The GA data-plane API version used when the deployment names none.
pub const DEFAULT_API_VERSION: &str = "2024-10-21";

/// URLs and `api-key` credential for an Azure OpenAI deployment.
pub fn target(spec: &DeploymentSpec) -> Result<Prepared, String> {
    let base = spec
        .base_url
        .as_deref()
        .ok_or("baseUrl is required for azure (https://RESOURCE.openai.azure.com)")?;
    if spec.model.is_empty() || spec.model.contains(['/', '?', '#']) {
        return Err("model must be the Azure deployment name".into());
    }
    let version = spec.api_version.as_deref().unwrap_or(DEFAULT_API_VERSION);
    if !version
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(format!("apiVersion {version:?} is not a valid api-version"));
    }
    let query = format!("api-version={version}");
    let base = format!(
        "{}/openai/deployments/{}",
        base.trim_end_matches('/'),
        spec.model
    );
    let uris = Endpoint::ALL.map(|e| join(&base, e.path(), Some(&query)));
    let [a, b, c] = uris;
    let key = spec
        .api_key
        .as_ref()
        .ok_or("apiKey is required for azure")?;
    let auth = (
        HeaderName::from_static("api-key"),
        secret_header(key.expose())?,
    );
    Ok(([a?, b?, c?], Some(auth)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::snapshot::{ProviderKind, SecretString};
    use crate::provider::spec;

    #[test]
    fn builds_deployment_urls_with_api_version_and_api_key() {
        let mut s = spec(ProviderKind::Azure);
        s.base_url = Some("https://res.openai.azure.com/".into());
        s.model = "gpt4o-prod".into();
        s.api_key = Some(SecretString::new("azkey"));
        let (uris, auth) = target(&s).unwrap();
        assert_eq!(
            uris[0].to_string(),
            "https://res.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"
        );
        assert!(uris[2].path().ends_with("/embeddings"));
        let (name, value) = auth.unwrap();
        assert_eq!(name.as_str(), "api-key");
        assert_eq!(value.to_str().unwrap(), "azkey");
    }

    #[test]
    fn requires_base_url_and_key() {
        let mut s = spec(ProviderKind::Azure);
        assert!(target(&s).unwrap_err().contains("baseUrl"));
        s.base_url = Some("https://res.openai.azure.com".into());
        assert!(target(&s).unwrap_err().contains("apiKey"));
        s.api_key = Some(SecretString::new("k"));
        s.api_version = Some("2024-10-21&x=1".into());
        assert!(target(&s).is_err());
    }
}

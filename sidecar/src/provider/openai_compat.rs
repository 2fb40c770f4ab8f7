//! OpenAI and the providers that speak its API as-is: the body passes through with only
//! `model` replaced, and auth is a bearer token. Each kind differs only in its default
//! base URL.

use http::header;

use super::{Endpoint, Prepared, join, secret_header};
use crate::config::snapshot::{DeploymentSpec, ProviderKind};

/// The base URL a provider kind uses when the deployment names none.
pub fn default_base_url(kind: ProviderKind) -> Option<&'static str> {
    Some(match kind {
        ProviderKind::Openai => "https://api.openai.com/v1",
        ProviderKind::Ollama => "http://localhost:11434/v1",
        ProviderKind::Vllm => "http://localhost:8000/v1",
        ProviderKind::Groq => "https://api.groq.com/openai/v1",
        ProviderKind::Mistral => "https://api.mistral.ai/v1",
        ProviderKind::Deepseek => "https://api.deepseek.com",
        ProviderKind::Together => "https://api.together.xyz/v1",
        ProviderKind::Fireworks => "https://api.fireworks.ai/inference/v1",
        ProviderKind::Openrouter => "https://openrouter.ai/api/v1",
        ProviderKind::Perplexity => "https://api.perplexity.ai",
        ProviderKind::OpenaiCompatible | ProviderKind::Azure | ProviderKind::Demo => return None,
    })
}

/// Whether the provider refuses calls without a key (local servers do not).
fn requires_key(kind: ProviderKind) -> bool {
    !matches!(
        kind,
        ProviderKind::Ollama | ProviderKind::Vllm | ProviderKind::OpenaiCompatible
    )
}

/// URLs and bearer credential for an OpenAI-compatible deployment.
pub fn target(kind: ProviderKind, spec: &DeploymentSpec) -> Result<Prepared, String> {
    let base = match (&spec.base_url, default_base_url(kind)) {
        (Some(url), _) => url.as_str(),
        (None, Some(url)) => url,
        (None, None) => return Err("baseUrl is required for this provider".into()),
    };
    let uris = [
        join(base, Endpoint::ChatCompletions.path(), None)?,
        join(base, Endpoint::Completions.path(), None)?,
        join(base, Endpoint::Embeddings.path(), None)?,
    ];
    let auth = match &spec.api_key {
        Some(key) => Some((
            header::AUTHORIZATION,
            secret_header(&format!("Bearer {}", key.expose()))?,
        )),
        None if requires_key(kind) => return Err("apiKey is required for this provider".into()),
        None => None,
    };
    Ok((uris, auth))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::snapshot::SecretString;
    use crate::provider::spec;

    #[test]
    fn every_hosted_kind_has_an_https_default() {
        for kind in [
            ProviderKind::Openai,
            ProviderKind::Groq,
            ProviderKind::Mistral,
            ProviderKind::Deepseek,
            ProviderKind::Together,
            ProviderKind::Fireworks,
            ProviderKind::Openrouter,
            ProviderKind::Perplexity,
        ] {
            let mut s = spec(kind);
            s.api_key = Some(SecretString::new("k"));
            let (uris, auth) = target(kind, &s).unwrap();
            assert_eq!(uris[0].scheme_str(), Some("https"), "{kind:?}");
            assert!(uris[0].path().ends_with("/chat/completions"));
            let (name, value) = auth.unwrap();
            assert_eq!(name, header::AUTHORIZATION);
            assert_eq!(value.to_str().unwrap(), "Bearer k");
        }
    }

    #[test]
    fn base_url_override_and_local_servers_without_keys() {
        let mut s = spec(ProviderKind::Vllm);
        s.base_url = Some("http://vllm.svc:8000/v1".into());
        let (uris, auth) = target(ProviderKind::Vllm, &s).unwrap();
        assert_eq!(uris[2].to_string(), "http://vllm.svc:8000/v1/embeddings");
        assert!(auth.is_none());
    }

    #[test]
    fn hosted_kinds_need_keys_and_generic_needs_a_url() {
        assert!(target(ProviderKind::Openai, &spec(ProviderKind::Openai)).is_err());
        let err = target(
            ProviderKind::OpenaiCompatible,
            &spec(ProviderKind::OpenaiCompatible),
        )
        .unwrap_err();
        assert!(err.contains("baseUrl"));
    }
}

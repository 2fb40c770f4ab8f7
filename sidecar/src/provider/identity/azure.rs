//! Entra ID access tokens for Azure OpenAI without an API key (Microsoft Entra Workload
//! ID, `azure-workload-identity`).
//!
//! Azure's workload identity webhook injects, into every container of a pod labelled
//! `azure.workload.identity/use: "true"`, `AZURE_CLIENT_ID` and `AZURE_TENANT_ID` (from
//! the ServiceAccount's annotations), `AZURE_AUTHORITY_HOST` and
//! `AZURE_FEDERATED_TOKEN_FILE` (a projected ServiceAccount token, audience
//! `api://AzureADTokenExchange`). A fetch reads the token file anew and POSTs the client
//! credentials grant with a federated assertion to
//! `{AZURE_AUTHORITY_HOST}/{tenant}/oauth2/v2.0/token`: `client_id`,
//! `grant_type=client_credentials`,
//! `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`,
//! `client_assertion=<token>`, `scope=https://cognitiveservices.azure.com/.default`. The
//! answer is `{"token_type": "Bearer", "expires_in", "ext_expires_in",
//! "access_token"}`, sent upstream as `Authorization: Bearer` instead of `api-key`.

use std::sync::Arc;

use http::header::HeaderValue;
use http::{Method, Uri};

use super::cache::{Fetch, Fetched};
use super::net::{
    FORM, error_said, exchange, form, http_url, oauth_token, read_token_file, request,
};
use super::{BearerSource, Env, required, shared, unavailable};
use crate::provider::ProviderContext;
use crate::upstream::Transport;

/// Entra ID's public cloud, when the webhook names no authority.
const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com/";
/// Azure OpenAI's (Cognitive Services') scope.
pub const SCOPE: &str = "https://cognitiveservices.azure.com/.default";

/// The token source of an Azure OpenAI deployment with workload identity, shared with
/// other deployments of the same client. A pod the webhook did not mutate gets a
/// source that fails with the reason.
pub fn source(ctx: &ProviderContext) -> BearerSource {
    match Entra::from_env(&*ctx.env, &ctx.http) {
        Ok(f) => shared(&ctx.bearer, f.key(), f),
        Err(why) => unavailable(why),
    }
}

/// Entra ID's token endpoint, with the pod's federated token.
pub struct Entra {
    http: Arc<dyn Transport>,
    token_url: Uri,
    client_id: String,
    token_file: String,
}

impl Entra {
    /// The flow as the webhook's variables describe it.
    pub fn from_env(env: &dyn Env, http: &Arc<dyn Transport>) -> Result<Self, String> {
        let [client_id, tenant_id, token_file] = required(
            env,
            "azure-workload-identity",
            [
                "AZURE_CLIENT_ID",
                "AZURE_TENANT_ID",
                "AZURE_FEDERATED_TOKEN_FILE",
            ],
            "label the pod azure.workload.identity/use: \"true\" and annotate its \
             ServiceAccount with azure.workload.identity/client-id",
        )?;
        let safe = |v: &str| {
            !v.is_empty()
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        };
        if !safe(&tenant_id) {
            return Err(format!(
                "AZURE_TENANT_ID {tenant_id:?} is not a tenant id or domain"
            ));
        }
        if !safe(&client_id) {
            return Err(format!("AZURE_CLIENT_ID {client_id:?} is not a client id"));
        }
        let authority = env
            .var("AZURE_AUTHORITY_HOST")
            .unwrap_or_else(|| DEFAULT_AUTHORITY.to_owned());
        let token_url = http_url(
            &format!(
                "{}/{tenant_id}/oauth2/v2.0/token",
                authority.trim_end_matches('/')
            ),
            "AZURE_AUTHORITY_HOST",
        )?;
        Ok(Entra {
            http: Arc::clone(http),
            token_url,
            client_id,
            token_file,
        })
    }

    fn key(&self) -> String {
        format!(
            "azure-workload-identity|{}|{}|{}",
            self.token_url, self.client_id, self.token_file
        )
    }
}

impl Fetch for Entra {
    type Value = HeaderValue;

    async fn fetch(&self) -> Result<Fetched<HeaderValue>, String> {
        let assertion = read_token_file(&self.token_file).await?;
        let body = form(&[
            ("client_id", &self.client_id),
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &assertion),
            ("scope", SCOPE),
        ]);
        let sent = request(Method::POST, &self.token_url, Some((FORM, body)));
        let answer = exchange(&*self.http, sent).await?;
        if !answer.status.is_success() {
            return Err(format!(
                "Entra ID ({}) answered {} ({})",
                self.token_url,
                answer.status,
                error_said(&answer.body)
            ));
        }
        oauth_token(&answer.body, "Entra ID")
    }

    fn describe(&self) -> String {
        format!("Entra ID token for client {}", self.client_id)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;
    use crate::provider::identity::fake::Fake;

    fn env(file: &str) -> HashMap<String, String> {
        [
            ("AZURE_CLIENT_ID", "00000000-0000-0000-0000-00000000c1d0"),
            ("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
            ("AZURE_FEDERATED_TOKEN_FILE", file),
            ("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.com/"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    }

    #[tokio::test]
    async fn posts_the_federated_client_credentials_grant() {
        let dir = std::env::temp_dir().join(format!("llmesh-azure-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("azure-identity-token");
        std::fs::write(&file, "eyJ.azure.federated\n").unwrap();
        let fake = Fake::new();
        fake.answer(
            200,
            r#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0eXAi.entra"}"#,
        );
        let http: Arc<dyn Transport> = fake.clone();
        let flow = Entra::from_env(&env(file.to_str().unwrap()), &http).unwrap();
        let token = flow.fetch().await.unwrap();
        assert_eq!(token.value, "Bearer eyJ0eXAi.entra");
        assert_eq!(token.lifetime, Duration::from_secs(3599));
        let seen = &fake.seen()[0];
        assert_eq!(
            seen.uri,
            "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token"
        );
        let form = seen.form();
        assert_eq!(form["client_id"], "00000000-0000-0000-0000-00000000c1d0");
        assert_eq!(form["grant_type"], "client_credentials");
        assert_eq!(
            form["client_assertion_type"],
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        );
        assert_eq!(form["client_assertion"], "eyJ.azure.federated");
        assert_eq!(
            form["scope"],
            "https://cognitiveservices.azure.com/.default"
        );
        fake.set(
            401,
            r#"{"error":"invalid_client","error_description":"AADSTS700211: No matching federated identity record found for presented assertion issuer.","error_codes":[700211]}"#,
        );
        let err = flow.fetch().await.unwrap_err();
        assert!(err.contains("invalid_client: AADSTS700211"), "{err}");
        assert!(!err.contains("eyJ.azure.federated"), "{err}");
    }

    #[test]
    fn the_webhooks_variables_are_required_and_checked() {
        let http: Arc<dyn Transport> = Fake::new();
        let err = Entra::from_env(&HashMap::new(), &http).err().unwrap();
        assert!(
            err.contains("AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE not set")
                && err.contains("azure.workload.identity/use"),
            "{err}"
        );
        let mut bad = env("/t");
        bad.insert("AZURE_TENANT_ID".into(), "../evil".into());
        assert!(Entra::from_env(&bad, &http).is_err());
        let mut sovereign = env("/t");
        sovereign.insert(
            "AZURE_AUTHORITY_HOST".into(),
            "https://login.microsoftonline.us".into(),
        );
        let flow = Entra::from_env(&sovereign, &http).unwrap();
        assert!(
            flow.token_url
                .to_string()
                .starts_with("https://login.microsoftonline.us/72f9")
        );
    }
}

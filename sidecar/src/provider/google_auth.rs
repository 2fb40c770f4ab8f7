//! Google service-account credentials for Vertex AI: OAuth 2.0 access tokens got by
//! the server-to-server flow, cached until shortly before they expire.
//!
//! The flow (Google's "Using OAuth 2.0 for Server to Server Applications"): sign a JWT
//! with the service account's RSA key — header `{"alg":"RS256","typ":"JWT","kid":
//! <private_key_id>}`, claims `{iss: client_email, scope, aud: <token URL>, iat, exp}`
//! with `exp` an hour after `iat`, the most Google allows — and POST it as a form,
//! `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<jwt>`, to the
//! token URL. The answer is `{"access_token", "expires_in", "token_type": "Bearer"}`.
//!
//! A [`ServiceAccountFlow`] is one [`Fetch`] of the identity module's: the one
//! [`Cached`](super::identity::cache::Cached) type keeps its tokens and refreshes them
//! ahead of expiry, and sources are shared across config reloads per account, key and
//! token URL, so a reload does not fetch new tokens.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::HeaderValue;
use http::{Method, Uri};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;
use serde_json::json;

use super::identity::cache::{Fetch, Fetched};
use super::identity::net::{FORM, error_said, exchange, oauth_token, request};
use super::identity::{BearerSource, shared};
use super::openai_wire::base64_encode;
use super::{BuildError, ProviderContext};
use crate::upstream::Transport;

/// Google's token endpoint, used when neither the key file nor the deployment names one.
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// The scope Vertex AI needs.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// What the JWT asks for: an hour, the longest Google grants.
const ASSERTION_LIFETIME: u64 = 3600;

/// A service account's identity and signing key, from its JSON key file.
pub struct ServiceAccount {
    client_email: String,
    private_key_id: String,
    project_id: Option<String>,
    token_uri: Option<String>,
    key: RsaKeyPair,
}

impl fmt::Debug for ServiceAccount {
    // The key stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    project_id: Option<String>,
    private_key_id: String,
    private_key: String,
    client_email: String,
    #[serde(default)]
    token_uri: Option<String>,
}

impl ServiceAccount {
    /// Parses a key file (`"type": "service_account"`, PKCS#8 PEM `private_key`).
    /// Errors never quote the file.
    pub fn from_json(json: &str) -> Result<ServiceAccount, String> {
        #[derive(Deserialize)]
        struct Kind {
            #[serde(rename = "type", default)]
            kind: String,
        }
        if serde_json::from_str::<Kind>(json).is_ok_and(|k| k.kind == "external_account") {
            return Err(
                "the key is an external_account credential configuration: set \
                        workloadIdentity: gcp-external-account on the deployment to use it"
                    .into(),
            );
        }
        let file: KeyFile = serde_json::from_str(json).map_err(|e| {
            format!(
                "the service-account key is not a Google JSON key file (line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        if file.kind != "service_account" {
            return Err(format!(
                "the key file has type {:?}; a \"service_account\" key is needed",
                file.kind
            ));
        }
        let der = PrivatePkcs8KeyDer::from_pem_slice(file.private_key.as_bytes())
            .map_err(|_| "the key file's private_key is not a PKCS#8 PEM key".to_owned())?;
        let key = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
            .map_err(|e| format!("the key file's private_key is not a usable RSA key: {e}"))?;
        Ok(ServiceAccount {
            client_email: file.client_email,
            private_key_id: file.private_key_id,
            project_id: file.project_id,
            token_uri: file.token_uri,
            key,
        })
    }

    /// The project the account belongs to.
    pub fn project_id(&self) -> Option<&str> {
        self.project_id.as_deref()
    }

    /// A signed JWT asking `audience` (the token URL) for a token, issued at `now`
    /// (Unix seconds).
    fn assertion(&self, audience: &str, now: u64) -> Result<String, String> {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": self.private_key_id});
        let claims = json!({
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": audience,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
        });
        let signing_input = format!(
            "{}.{}",
            base64url(header.to_string().as_bytes()),
            base64url(claims.to_string().as_bytes())
        );
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| "signing the token request failed".to_owned())?;
        Ok(format!("{signing_input}.{}", base64url(&signature)))
    }
}

/// Base64url without padding, as JWTs use.
fn base64url(bytes: &[u8]) -> String {
    base64_encode(bytes)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

/// The service-account flow: a signed JWT exchanged at the token URL.
pub struct ServiceAccountFlow {
    account: ServiceAccount,
    token_url: Uri,
    http: Arc<dyn Transport>,
}

impl fmt::Debug for ServiceAccountFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountFlow")
            .field("account", &self.account)
            .field("token_url", &self.token_url)
            .finish_non_exhaustive()
    }
}

impl ServiceAccountFlow {
    /// The flow for `account`, asking `token_url` (the deployment's override, else the
    /// key file's `token_uri`, else Google's) through `http`.
    pub fn new(
        account: ServiceAccount,
        token_url: Option<&str>,
        http: Arc<dyn Transport>,
    ) -> Result<ServiceAccountFlow, String> {
        let url = token_url
            .or(account.token_uri.as_deref())
            .unwrap_or(DEFAULT_TOKEN_URL);
        let token_url: Uri = url
            .parse()
            .map_err(|_| format!("tokenUrl {url:?} is not a valid URL"))?;
        if !matches!(token_url.scheme_str(), Some("http" | "https")) || token_url.host().is_none() {
            return Err(format!("tokenUrl {url:?} must be an absolute http(s) URL"));
        }
        Ok(ServiceAccountFlow {
            account,
            token_url,
            http,
        })
    }

    /// What the flow's tokens are shared under: account, key and token URL.
    fn key(&self) -> String {
        format!(
            "gcp-service-account|{}|{}|{}",
            self.account.client_email, self.account.private_key_id, self.token_url
        )
    }
}

impl Fetch for ServiceAccountFlow {
    type Value = HeaderValue;

    async fn fetch(&self) -> Result<Fetched<HeaderValue>, String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let assertion = self.account.assertion(&self.token_url.to_string(), now)?;
        // The assertion is base64url and dots: nothing in it needs escaping.
        let form = format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
        );
        let sent = request(
            Method::POST,
            &self.token_url,
            Some((FORM, Bytes::from(form))),
        );
        let answer = exchange(&*self.http, sent).await?;
        let (status, body) = (answer.status, answer.body);
        if !status.is_success() {
            return Err(format!(
                "the token endpoint answered {status} ({})",
                error_said(&body)
            ));
        }
        oauth_token(&body, "the token endpoint")
    }

    fn describe(&self) -> String {
        format!("Vertex AI access token for {}", self.account.client_email)
    }
}

/// The token source of this key file and token URL, shared with every deployment using
/// the same account, key and URL; and the key file's project.
pub fn source(
    key_file: &str,
    token_url: Option<&str>,
    ctx: &ProviderContext,
) -> Result<(BearerSource, Option<String>), BuildError> {
    let account = ServiceAccount::from_json(key_file)?;
    let project = account.project_id().map(str::to_owned);
    let flow = ServiceAccountFlow::new(account, token_url, Arc::clone(&ctx.http))?;
    Ok((shared(&ctx.bearer, flow.key(), flow), project))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http::header::CONTENT_TYPE;
    use http_body_util::{BodyExt, Full};

    use super::*;
    use crate::upstream::{ResponseFuture, UpstreamRequest};

    /// A token endpoint in process: answers what `answer` says and counts requests.
    struct FakeEndpoint {
        calls: AtomicUsize,
        answer: Mutex<(u16, String)>,
    }

    impl FakeEndpoint {
        fn new() -> Arc<FakeEndpoint> {
            Arc::new(FakeEndpoint {
                calls: AtomicUsize::new(0),
                answer: Mutex::new((200, String::new())),
            })
        }

        fn set(&self, status: u16, body: &str) {
            *self.answer.lock().unwrap() = (status, body.to_owned());
        }
    }

    impl Transport for FakeEndpoint {
        fn send(&self, request: UpstreamRequest) -> ResponseFuture {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            let (status, body) = self.answer.lock().unwrap().clone();
            let body = if body.is_empty() {
                format!(r#"{{"access_token":"tok-{n}","expires_in":600,"token_type":"Bearer"}}"#)
            } else {
                body
            };
            Box::pin(async move {
                assert_eq!(
                    request.headers()[CONTENT_TYPE],
                    "application/x-www-form-urlencoded"
                );
                let form = request.into_body().collect().await.unwrap().to_bytes();
                assert!(form.starts_with(
                    b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=ey"
                ));
                let response = http::Response::builder()
                    .status(status)
                    .body(
                        Full::new(Bytes::from(body))
                            .map_err(|never| match never {})
                            .boxed(),
                    )
                    .unwrap();
                Ok(response)
            })
        }
    }

    fn key_file() -> String {
        llmesh_tests::gemini::service_account_json("https://oauth2.example/token")
    }

    fn flow(endpoint: &Arc<FakeEndpoint>) -> ServiceAccountFlow {
        let account = ServiceAccount::from_json(&key_file()).unwrap();
        ServiceAccountFlow::new(account, None, endpoint.clone()).unwrap()
    }

    #[tokio::test]
    async fn the_signed_jwt_is_exchanged_for_a_bearer_token() {
        let endpoint = FakeEndpoint::new();
        let flow = flow(&endpoint);
        assert_eq!(flow.token_url.to_string(), "https://oauth2.example/token");
        let token = flow.fetch().await.unwrap();
        assert_eq!(token.value, "Bearer tok-1");
        assert!(token.value.is_sensitive());
        assert_eq!(token.lifetime.as_secs(), 600);
        endpoint.set(
            400,
            r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
        );
        let err = flow.fetch().await.unwrap_err();
        assert!(
            err.contains("400 Bad Request (invalid_grant: Invalid JWT Signature.)"),
            "{err}"
        );
        endpoint.set(
            200,
            r#"{"access_token":"t","expires_in":60,"token_type":"MAC"}"#,
        );
        assert!(flow.fetch().await.is_err());
        endpoint.set(200, "<html>");
        assert!(flow.fetch().await.is_err());
    }

    #[test]
    fn key_files_are_checked_without_quoting_them() {
        let good = key_file();
        assert_eq!(
            ServiceAccount::from_json(&good).unwrap().project_id(),
            Some("mock-project")
        );
        let federated = good.replace("\"service_account\"", "\"external_account\"");
        assert!(
            ServiceAccount::from_json(&federated)
                .unwrap_err()
                .contains("workloadIdentity: gcp-external-account")
        );
        let user = good.replace("\"service_account\"", "\"authorized_user\"");
        assert!(
            ServiceAccount::from_json(&user)
                .unwrap_err()
                .contains("authorized_user")
        );
        let err = ServiceAccount::from_json("{\"private_key\": \"secret-material\"").unwrap_err();
        assert!(!err.contains("secret-material"), "{err}");
        let mut value: serde_json::Value = serde_json::from_str(&good).unwrap();
        value["private_key"] =
            json!("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
        assert!(ServiceAccount::from_json(&value.to_string()).is_err());
        let account = ServiceAccount::from_json(&good).unwrap();
        assert!(!format!("{account:?}").contains("PRIVATE"));
    }

    #[test]
    fn sources_are_shared_per_account_key_and_url() {
        let ctx = ProviderContext::new(FakeEndpoint::new());
        let (a, project) = source(&key_file(), None, &ctx).unwrap();
        assert_eq!(project.as_deref(), Some("mock-project"));
        let (b, _) = source(&key_file(), None, &ctx).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let (c, _) = source(&key_file(), Some("http://127.0.0.1:1/token"), &ctx).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert!(source(&key_file(), Some("ftp://x/token"), &ctx).is_err());
    }

    #[test]
    fn base64url_has_no_padding_or_plus_or_slash() {
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }
}

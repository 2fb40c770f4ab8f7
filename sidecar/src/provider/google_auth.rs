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
//! A [`TokenSource`] fetches a token on first use and again when less than five
//! minutes (or half its lifetime, for short-lived ones) remain; one request refreshes
//! while the others keep using the still-valid token, and a failed refresh falls back
//! to it. Sources are shared across config reloads by [`TokenSources`], so a reload
//! does not fetch new tokens.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, USER_AGENT};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;

use super::openai_wire::base64_encode;
use super::{CredentialError, secret_header};
use crate::upstream::Transport;

/// Google's token endpoint, used when neither the key file nor the deployment names one.
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// The scope Vertex AI needs.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// What the JWT asks for: an hour, the longest Google grants.
const ASSERTION_LIFETIME: u64 = 3600;
/// Refresh this long before expiry (or at half the lifetime, if that is shorter).
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// A token request that takes longer has failed.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a fetched token is trusted, whatever the endpoint says (a day).
const MAX_TOKEN_LIFETIME_SECS: u64 = 24 * 3600;
/// Token answers are small; anything bigger is not one.
const MAX_ANSWER: usize = 64 * 1024;

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

/// A cached access token.
struct Token {
    header: HeaderValue,
    refresh_at: Instant,
    expires_at: Instant,
}

/// Access tokens for one service account, fetched when needed.
pub struct TokenSource {
    account: ServiceAccount,
    token_url: Uri,
    http: Arc<dyn Transport>,
    cached: Mutex<Option<Token>>,
    /// Held by the one request refreshing.
    refresh: tokio::sync::Mutex<()>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("account", &self.account)
            .field("token_url", &self.token_url)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TokenSource {
    /// A source for `account`, asking `token_url` (the deployment's override, else the
    /// key file's `token_uri`, else Google's) through `http`.
    pub fn new(
        account: ServiceAccount,
        token_url: Option<&str>,
        http: Arc<dyn Transport>,
    ) -> Result<TokenSource, String> {
        let url = token_url
            .or(account.token_uri.as_deref())
            .unwrap_or(DEFAULT_TOKEN_URL);
        let token_url: Uri = url
            .parse()
            .map_err(|_| format!("tokenUrl {url:?} is not a valid URL"))?;
        if !matches!(token_url.scheme_str(), Some("http" | "https")) || token_url.host().is_none() {
            return Err(format!("tokenUrl {url:?} must be an absolute http(s) URL"));
        }
        Ok(TokenSource {
            account,
            token_url,
            http,
            cached: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
        })
    }

    /// The project of the service account.
    pub fn project_id(&self) -> Option<&str> {
        self.account.project_id()
    }

    /// `Bearer <token>`, from the cache or freshly fetched.
    pub async fn authorization(&self) -> Result<HeaderValue, CredentialError> {
        let usable = {
            let cached = lock(&self.cached);
            let now = Instant::now();
            match cached.as_ref() {
                Some(t) if now < t.refresh_at => return Ok(t.header.clone()),
                Some(t) if now < t.expires_at => Some(t.header.clone()),
                _ => None,
            }
        };
        // Only one request refreshes; while a valid token remains, the others use it.
        let _guard = match (&usable, self.refresh.try_lock()) {
            (_, Ok(guard)) => guard,
            (Some(header), Err(_)) => return Ok(header.clone()),
            (None, Err(_)) => self.refresh.lock().await,
        };
        if let Some(t) = lock(&self.cached).as_ref()
            && Instant::now() < t.refresh_at
        {
            return Ok(t.header.clone());
        }
        match self.fetch().await {
            Ok(token) => {
                let header = token.header.clone();
                *lock(&self.cached) = Some(token);
                Ok(header)
            }
            Err(why) => {
                if let Some(header) = usable {
                    tracing::warn!(
                        account = %self.account.client_email,
                        "refreshing the Vertex AI access token failed, using the current one until it expires: {why}"
                    );
                    return Ok(header);
                }
                Err(CredentialError(format!(
                    "no Vertex AI access token for {}: {why}",
                    self.account.client_email
                )))
            }
        }
    }

    async fn fetch(&self) -> Result<Token, String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let assertion = self.account.assertion(&self.token_url.to_string(), now)?;
        // The assertion is base64url and dots: nothing in it needs escaping.
        let form = format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
        );
        let mut request = Request::new(Full::new(Bytes::from(form)));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.token_url.clone();
        request.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        request.headers_mut().insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("llmesh/", env!("CARGO_PKG_VERSION"))),
        );
        let started = Instant::now();
        let exchange = async {
            let response = self
                .http
                .send(request)
                .await
                .map_err(|e| format!("token request to {} failed: {e}", self.token_url))?;
            let (parts, mut body) = response.into_parts();
            let mut bytes = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| format!("reading the token answer failed: {e}"))?;
                if let Ok(data) = frame.into_data() {
                    if bytes.len() + data.len() > MAX_ANSWER {
                        return Err("the token answer is too large".to_owned());
                    }
                    bytes.extend_from_slice(&data);
                }
            }
            Ok::<_, String>((parts.status, bytes))
        };
        let (status, body) = tokio::time::timeout(FETCH_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("the token endpoint did not answer within {FETCH_TIMEOUT:?}"))??;
        if !status.is_success() {
            #[derive(Deserialize)]
            struct OauthError {
                #[serde(default)]
                error: String,
                #[serde(default)]
                error_description: String,
            }
            let detail = serde_json::from_slice::<OauthError>(&body)
                .map(|e| format!("{}: {}", e.error, e.error_description))
                .unwrap_or_else(|_| "no OAuth error body".to_owned());
            return Err(format!("the token endpoint answered {status} ({detail})"));
        }
        #[derive(Deserialize)]
        struct Answer {
            access_token: String,
            expires_in: u64,
            #[serde(default)]
            token_type: Option<String>,
        }
        let answer: Answer = serde_json::from_slice(&body)
            .map_err(|_| "the token endpoint's answer is not an access token".to_owned())?;
        if answer
            .token_type
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
        {
            return Err("the token endpoint issued a token that is not a bearer token".into());
        }
        let header = secret_header(&format!("Bearer {}", answer.access_token))
            .map_err(|_| "the access token is not a valid header value".to_owned())?;
        // Google's tokens live an hour; a larger (or absurd) `expires_in` is capped so
        // the clock arithmetic below cannot overflow.
        let lifetime = Duration::from_secs(answer.expires_in.min(MAX_TOKEN_LIFETIME_SECS));
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        Ok(Token {
            header,
            refresh_at: started + lifetime - margin,
            expires_at: started + lifetime,
        })
    }
}

/// Token sources by service account, key and token URL, kept while any deployment
/// uses them so config reloads reuse cached tokens.
#[derive(Default)]
pub struct TokenSources {
    sources: Mutex<HashMap<(String, String, String), Weak<TokenSource>>>,
}

impl TokenSources {
    /// The source for this key file and token URL, shared if one exists.
    pub fn get(
        &self,
        key_file: &str,
        token_url: Option<&str>,
        http: &Arc<dyn Transport>,
    ) -> Result<Arc<TokenSource>, String> {
        let account = ServiceAccount::from_json(key_file)?;
        let source = TokenSource::new(account, token_url, Arc::clone(http))?;
        let key = (
            source.account.client_email.clone(),
            source.account.private_key_id.clone(),
            source.token_url.to_string(),
        );
        let mut sources = lock(&self.sources);
        sources.retain(|_, weak| weak.strong_count() > 0);
        if let Some(existing) = sources.get(&key).and_then(Weak::upgrade) {
            return Ok(existing);
        }
        let source = Arc::new(source);
        sources.insert(key, Arc::downgrade(&source));
        Ok(source)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt;

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
            *lock(&self.answer) = (status, body.to_owned());
        }
    }

    impl Transport for FakeEndpoint {
        fn send(&self, request: UpstreamRequest) -> ResponseFuture {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            let (status, body) = lock(&self.answer).clone();
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

    fn source(endpoint: &Arc<FakeEndpoint>) -> TokenSource {
        let account = ServiceAccount::from_json(&key_file()).unwrap();
        TokenSource::new(account, None, endpoint.clone()).unwrap()
    }

    async fn bearer(source: &TokenSource) -> String {
        source
            .authorization()
            .await
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_are_cached_and_refreshed_ahead_of_expiry() {
        let endpoint = FakeEndpoint::new();
        let source = source(&endpoint);
        assert_eq!(source.token_url.to_string(), "https://oauth2.example/token");
        assert_eq!(bearer(&source).await, "Bearer tok-1");
        tokio::time::advance(Duration::from_secs(299)).await;
        assert_eq!(bearer(&source).await, "Bearer tok-1", "cached");
        // 600 s tokens are refreshed 300 s before they expire.
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(bearer(&source).await, "Bearer tok-2");
        assert_eq!(endpoint.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_refresh_keeps_the_valid_token_until_it_expires() {
        let endpoint = FakeEndpoint::new();
        let source = source(&endpoint);
        assert_eq!(bearer(&source).await, "Bearer tok-1");
        endpoint.set(
            400,
            r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
        );
        tokio::time::advance(Duration::from_secs(400)).await;
        assert_eq!(bearer(&source).await, "Bearer tok-1");
        tokio::time::advance(Duration::from_secs(201)).await;
        let err = source.authorization().await.unwrap_err().to_string();
        assert!(
            err.contains("400 Bad Request (invalid_grant: Invalid JWT Signature.)"),
            "{err}"
        );
        endpoint.set(200, "");
        assert!(bearer(&source).await.starts_with("Bearer tok-"));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_requests_share_one_fetch() {
        let endpoint = FakeEndpoint::new();
        let source = Arc::new(source(&endpoint));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let source = source.clone();
                tokio::spawn(async move { bearer(&source).await })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), "Bearer tok-1");
        }
        assert_eq!(endpoint.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_absurd_expires_in_is_capped_not_a_panic() {
        let endpoint = FakeEndpoint::new();
        let source = source(&endpoint);
        endpoint.set(
            200,
            r#"{"access_token":"t","expires_in":18446744073709551615,"token_type":"Bearer"}"#,
        );
        assert_eq!(source.authorization().await.unwrap(), "Bearer t");
        // Refreshed within the cap, not in 584 billion years.
        tokio::time::advance(Duration::from_secs(MAX_TOKEN_LIFETIME_SECS)).await;
        endpoint.set(200, "");
        assert_eq!(source.authorization().await.unwrap(), "Bearer tok-2");
    }

    #[tokio::test(start_paused = true)]
    async fn odd_answers_are_errors() {
        let endpoint = FakeEndpoint::new();
        let source = source(&endpoint);
        endpoint.set(
            200,
            r#"{"access_token":"t","expires_in":60,"token_type":"MAC"}"#,
        );
        assert!(source.authorization().await.is_err());
        endpoint.set(200, "<html>");
        assert!(source.authorization().await.is_err());
    }

    #[test]
    fn key_files_are_checked_without_quoting_them() {
        let good = key_file();
        assert_eq!(
            ServiceAccount::from_json(&good).unwrap().project_id(),
            Some("mock-project")
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
        let sources = TokenSources::default();
        let http: Arc<dyn Transport> = FakeEndpoint::new();
        let a = sources.get(&key_file(), None, &http).unwrap();
        let b = sources.get(&key_file(), None, &http).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let c = sources
            .get(&key_file(), Some("http://127.0.0.1:1/token"), &http)
            .unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert!(
            sources
                .get(&key_file(), Some("ftp://x/token"), &http)
                .is_err()
        );
        drop((a, b));
        let d = sources.get(&key_file(), None, &http).unwrap();
        assert_eq!(
            Arc::strong_count(&d),
            1,
            "a dropped source is not kept alive"
        );
    }

    #[test]
    fn base64url_has_no_padding_or_plus_or_slash() {
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }
}

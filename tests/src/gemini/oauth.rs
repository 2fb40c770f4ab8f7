//! A mock of Google's OAuth 2.0 token endpoint for service accounts, strict about the
//! JWT it is given, and the bearer-token check of the Vertex AI paths.
//!
//! The flow (Google's "OAuth 2.0 for Server to Server Applications"): the client
//! signs a JWT with the service account's RSA key — header `{"alg":"RS256",
//! "typ":"JWT","kid":<private_key_id>}`, claims `{iss: client_email, scope, aud:
//! token_uri, iat, exp}` with `exp` at most an hour after `iat` — and POSTs
//! `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<jwt>` as a form
//! to `token_uri`. The answer is `{"access_token","expires_in","token_type":"Bearer"}`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use ring::signature::{self, KeyPair, RsaKeyPair};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};

use crate::identity::Tokens;
use crate::mock::lock;

/// The test service account's e-mail, the JWT's `iss`.
pub const CLIENT_EMAIL: &str = "llmesh-test@mock-project.iam.gserviceaccount.com";
/// The test key's id, the JWT header's `kid`.
pub const PRIVATE_KEY_ID: &str = "6d6f636b2d6b65792d6964000000000000000000";
/// The project of the test service account, and the one Vertex paths must name.
pub const PROJECT: &str = "mock-project";
/// The scope Vertex AI needs.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// A TEST-ONLY RSA key (tests/fixtures/gemini/), never a real service account's.
pub const TEST_PRIVATE_KEY_PEM: &str =
    include_str!("../../fixtures/gemini/test-service-account-key.pem");

/// Google allows this much clock skew on `iat`.
const SKEW: u64 = 300;

/// A service-account key file for the test account, with `token_uri` pointing where
/// the caller says (the mock's token URL in tests).
pub fn service_account_json(token_uri: &str) -> String {
    let key = json!({
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": PRIVATE_KEY_ID,
        "private_key": TEST_PRIVATE_KEY_PEM,
        "client_email": CLIENT_EMAIL,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/llmesh-test%40mock-project.iam.gserviceaccount.com",
        "universe_domain": "googleapis.com",
    });
    serde_json::to_string_pretty(&key).unwrap_or_default()
}

/// Issues and checks access tokens.
pub(crate) struct Issuer {
    /// DER `RSAPublicKey` of the test key.
    public_key: Vec<u8>,
    /// Every token Vertex AI accepts: this endpoint's, and those the identity mocks
    /// issue into the same book.
    pub(crate) tokens: Tokens,
    lifetime: Mutex<Duration>,
    /// Tokens this endpoint issued.
    issued: AtomicUsize,
    /// A scripted failure for every token request, while set.
    failure: Mutex<Option<(u16, Value)>>,
}

/// Why a bearer token was refused.
pub(crate) enum Refused {
    Missing,
    Invalid,
}

impl Issuer {
    /// # Panics
    ///
    /// If the fixture key does not parse: the fixture is broken.
    pub(crate) fn new() -> Issuer {
        let der = PrivatePkcs8KeyDer::from_pem_slice(TEST_PRIVATE_KEY_PEM.as_bytes())
            .unwrap_or_else(|e| panic!("test key fixture: {e}"));
        let pair = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
            .unwrap_or_else(|e| panic!("test key fixture: {e}"));
        Issuer {
            public_key: pair.public_key().as_ref().to_vec(),
            tokens: Tokens::default(),
            lifetime: Mutex::new(Duration::from_secs(3599)),
            issued: AtomicUsize::new(0),
            failure: Mutex::new(None),
        }
    }

    pub(crate) fn set_lifetime(&self, lifetime: Duration) {
        *lock(&self.lifetime) = lifetime;
    }

    pub(crate) fn set_failure(&self, failure: Option<(u16, Value)>) {
        *lock(&self.failure) = failure;
    }

    pub(crate) fn issued(&self) -> usize {
        self.issued.load(Ordering::SeqCst)
    }

    /// Forgets every token issued, as if they had been revoked.
    pub(crate) fn revoke_all(&self) {
        self.tokens.revoke_all();
    }

    /// Answers a token request: status and JSON body. `audience` is the mock's own
    /// token URL, which the JWT's `aud` must name.
    pub(crate) fn exchange(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        audience: &str,
    ) -> (u16, Value) {
        if let Some(failure) = lock(&self.failure).clone() {
            return failure;
        }
        let form_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !form_type.starts_with("application/x-www-form-urlencoded") {
            return invalid_request("Content-Type must be application/x-www-form-urlencoded");
        }
        let form = parse_form(body);
        let field = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        match field("grant_type") {
            Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {}
            Some(other) => {
                return (
                    400,
                    json!({"error": "unsupported_grant_type", "error_description": format!("Invalid grant_type: {other}")}),
                );
            }
            None => return invalid_request("Missing required parameter: grant_type"),
        }
        let Some(assertion) = field("assertion") else {
            return invalid_request("Missing required parameter: assertion");
        };
        if let Err(why) = self.verify(assertion, audience) {
            return (
                400,
                json!({"error": "invalid_grant", "error_description": why}),
            );
        }
        self.issued.fetch_add(1, Ordering::SeqCst);
        let lifetime = *lock(&self.lifetime);
        let token = self.tokens.issue("ya29.mock-access-token-", lifetime);
        (
            200,
            json!({"access_token": token, "expires_in": lifetime.as_secs(), "token_type": "Bearer"}),
        )
    }

    /// Checks the JWT's form, header, claims and RS256 signature.
    fn verify(&self, jwt: &str, audience: &str) -> Result<(), String> {
        let mut pieces = jwt.split('.');
        let (Some(header), Some(claims), Some(sig), None) =
            (pieces.next(), pieces.next(), pieces.next(), pieces.next())
        else {
            return Err("Invalid JWT: expected three dot-separated parts.".into());
        };
        let decode_json = |part: &str| -> Result<Value, String> {
            let bytes = URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| "Invalid JWT: not base64url without padding.".to_owned())?;
            serde_json::from_slice(&bytes).map_err(|_| "Invalid JWT: part is not JSON.".to_owned())
        };
        let header = decode_json(header)?;
        if header["alg"] != "RS256" || header["typ"] != "JWT" {
            return Err("Invalid JWT: header must be {\"alg\":\"RS256\",\"typ\":\"JWT\"}.".into());
        }
        if header["kid"] != PRIVATE_KEY_ID {
            return Err("Invalid JWT Signature.".into());
        }
        let signature = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| "Invalid JWT Signature.".to_owned())?;
        let signed = &jwt[..jwt.len() - sig.len() - 1];
        signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &self.public_key)
            .verify(signed.as_bytes(), &signature)
            .map_err(|_| "Invalid JWT Signature.".to_owned())?;
        let claims = decode_json(claims)?;
        if claims["iss"] != CLIENT_EMAIL {
            return Err("Invalid JWT: iss is not the service account.".into());
        }
        if claims["aud"] != audience {
            return Err("Invalid JWT: Failed audience check.".into());
        }
        let scopes = claims["scope"].as_str().unwrap_or("");
        if !scopes.split(' ').any(|s| s == SCOPE) {
            return Err(format!("Invalid JWT: scope must include {SCOPE}."));
        }
        let now = unix_now();
        let (Some(iat), Some(exp)) = (claims["iat"].as_u64(), claims["exp"].as_u64()) else {
            return Err("Invalid JWT: iat and exp must be integers.".into());
        };
        if iat > now + SKEW || exp <= now || exp <= iat || exp - iat > 3600 {
            return Err(
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable \
                 timeframe. Check your iat and exp values in the JWT claim."
                    .into(),
            );
        }
        Ok(())
    }

    /// Checks `Authorization: Bearer <token>` against the tokens issued and unexpired.
    pub(crate) fn check_bearer(&self, headers: &HeaderMap) -> Result<(), Refused> {
        let Some(value) = headers.get(http::header::AUTHORIZATION) else {
            return Err(Refused::Missing);
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(Refused::Invalid)?;
        if self.tokens.valid(token) {
            Ok(())
        } else {
            Err(Refused::Invalid)
        }
    }
}

fn invalid_request(why: &str) -> (u16, Value) {
    (
        400,
        json!({"error": "invalid_request", "error_description": why}),
    )
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `application/x-www-form-urlencoded` pairs, percent-decoded.
fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (bytes[i], escaped) {
            (_, Some(b)) => {
                out.push(b);
                i += 3;
                continue;
            }
            (b'+', None) => out.push(b' '),
            (b, None) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Signs `claims` as a client would, with the test key: for tests of the mock itself.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn sign(header: &Value, claims: &Value) -> String {
    let der = PrivatePkcs8KeyDer::from_pem_slice(TEST_PRIVATE_KEY_PEM.as_bytes()).unwrap();
    let pair = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap();
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut sig = vec![0; pair.public().modulus_len()];
    pair.sign(
        &signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// Seconds since the epoch, for claims in tests.
#[cfg(test)]
pub(crate) fn now_for_tests() -> u64 {
    unix_now()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn good_claims(aud: &str) -> Value {
        let now = unix_now();
        json!({"iss": CLIENT_EMAIL, "scope": SCOPE, "aud": aud, "iat": now, "exp": now + 3600})
    }

    fn header() -> Value {
        json!({"alg": "RS256", "typ": "JWT", "kid": PRIVATE_KEY_ID})
    }

    fn form_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        h
    }

    fn exchange(issuer: &Issuer, jwt: &str) -> (u16, Value) {
        let body = format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={jwt}"
        );
        issuer.exchange(&form_headers(), body.as_bytes(), "http://t/token")
    }

    #[test]
    fn a_well_signed_jwt_gets_a_token_that_authorizes() {
        let issuer = Issuer::new();
        let (status, body) = exchange(&issuer, &sign(&header(), &good_claims("http://t/token")));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3599);
        let mut headers = HeaderMap::new();
        let bearer = format!("Bearer {}", body["access_token"].as_str().unwrap());
        headers.insert(http::header::AUTHORIZATION, bearer.parse().unwrap());
        assert!(issuer.check_bearer(&headers).is_ok());
        issuer.revoke_all();
        assert!(matches!(
            issuer.check_bearer(&headers),
            Err(Refused::Invalid)
        ));
        assert!(matches!(
            issuer.check_bearer(&HeaderMap::new()),
            Err(Refused::Missing)
        ));
    }

    #[test]
    fn bad_signatures_claims_and_forms_are_refused() {
        let issuer = Issuer::new();
        let good = sign(&header(), &good_claims("http://t/token"));
        // Tampered claims keep the old signature.
        let mut pieces: Vec<&str> = good.split('.').collect();
        let other = URL_SAFE_NO_PAD.encode(good_claims("http://evil/token").to_string());
        pieces[1] = &other;
        let (status, body) = exchange(&issuer, &pieces.join("."));
        assert_eq!(
            (status, body["error_description"].as_str()),
            (400, Some("Invalid JWT Signature."))
        );

        let wrong_aud = sign(&header(), &good_claims("http://elsewhere/token"));
        assert_eq!(
            exchange(&issuer, &wrong_aud).1["error_description"],
            "Invalid JWT: Failed audience check."
        );

        let mut long = good_claims("http://t/token");
        long["exp"] = json!(long["iat"].as_u64().unwrap() + 3601);
        assert_eq!(exchange(&issuer, &sign(&header(), &long)).0, 400);

        let mut no_scope = good_claims("http://t/token");
        no_scope["scope"] = json!("https://www.googleapis.com/auth/devstorage.read_only");
        assert_eq!(exchange(&issuer, &sign(&header(), &no_scope)).0, 400);

        let hs256 = json!({"alg": "HS256", "typ": "JWT", "kid": PRIVATE_KEY_ID});
        assert_eq!(
            exchange(&issuer, &sign(&hs256, &good_claims("http://t/token"))).0,
            400
        );

        let (status, body) = issuer.exchange(&HeaderMap::new(), b"grant_type=x", "http://t/token");
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request"))
        );
        let (_, body) = issuer.exchange(&form_headers(), b"grant_type=password", "http://t/token");
        assert_eq!(body["error"], "unsupported_grant_type");
        assert_eq!(issuer.issued(), 0);
    }

    #[test]
    fn forms_are_percent_decoded() {
        assert_eq!(
            parse_form(b"a=x%3Ay+z&b=%2&c"),
            vec![
                ("a".into(), "x:y z".into()),
                ("b".into(), "%2".into()),
                ("c".into(), String::new())
            ]
        );
    }
}

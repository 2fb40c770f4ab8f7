//! AWS's two ways of handing a pod temporary credentials, as mocks: STS's
//! `AssumeRoleWithWebIdentity` (IRSA) and the EKS Pod Identity agent.
//!
//! **STS** ([`MockSts`]) takes what the query API takes: `POST /` with an
//! `application/x-www-form-urlencoded` body `Action=AssumeRoleWithWebIdentity&
//! Version=2011-06-15&RoleArn=…&RoleSessionName=…&WebIdentityToken=…` (unsigned). It
//! answers AWS's documented XML,
//! `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">`
//! with `AssumeRoleWithWebIdentityResult` (`SubjectFromWebIdentityToken`, `Audience`,
//! `AssumedRoleUser`, `Credentials/{SessionToken,SecretAccessKey,Expiration,AccessKeyId}`,
//! `Provider`) and `ResponseMetadata/RequestId`, `text/xml`. Refusals are
//! `<ErrorResponse><Error><Type>Sender</Type><Code>…</Code><Message>…</Message></Error>
//! <RequestId>…</RequestId></ErrorResponse>`: an unknown action (`InvalidAction`), a
//! missing parameter (`MissingParameter`), a token other than the one the mock expects
//! (`InvalidIdentityToken`), a role other than its own (`AccessDenied`, 403), a session
//! name outside `[\w+=,.@-]{2,64}` (`ValidationError`).
//!
//! **The EKS Pod Identity agent** ([`MockPodIdentity`]) answers `GET /v1/credentials`
//! whose `Authorization` is the pod's projected ServiceAccount token with
//! `{"AccessKeyId", "SecretAccessKey", "Token", "AccountId", "Expiration"}`
//! (`Expiration` in Go's RFC 3339 with nanoseconds). Like the agent, it refuses an empty
//! token (400 `Service account token cannot be empty`) and one that is not a JWT with
//! unexpired claims (400 `Service account token cannot be parsed: …`), as plain text
//! the way Go's `http.Error` writes it. The agent's check of the address it was called
//! at (169.254.170.23) is left out: the mock listens on loopback.
//!
//! Both issue keys into a [`Keyring`]; the mock Bedrock accepts signatures made with
//! them until they expire ([`Keyring::expire_all`]: `ExpiredTokenException`) or are
//! forgotten ([`Keyring::revoke_all`]: `UnrecognizedClientException`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::{form, rfc3339};
use crate::bedrock::sigv4::Credentials;
use crate::mock::{Failure, Kind, Mock, Provider, Recorded, Reply, Resolved, lock, to_bytes};

/// The role [`MockSts`] lets callers assume by default.
pub const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/llmesh-bedrock";
/// The account the mocks issue keys in.
pub const ACCOUNT_ID: &str = "123456789012";

/// Temporary AWS keys issued by the identity mocks, each with its expiry; cheap to
/// clone, shared with the mock Bedrock.
#[derive(Clone, Debug, Default)]
pub struct Keyring(Arc<Mutex<Ring>>);

#[derive(Debug, Default)]
struct Ring {
    keys: HashMap<String, (Credentials, SystemTime)>,
    issued: usize,
}

/// What a keyring says of an access key id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Issued and unexpired: verify with these.
    Valid(Credentials),
    /// Issued, now expired.
    Expired,
    /// Never issued (or forgotten).
    Unknown,
}

impl Keyring {
    /// New temporary keys valid for `lifetime`, and their expiry.
    pub fn issue(&self, lifetime: Duration) -> (Credentials, SystemTime) {
        let mut ring = lock(&self.0);
        ring.issued += 1;
        let n = ring.issued;
        let credentials = Credentials::new(
            &format!("ASIAMOCKTEMP{n:08}"),
            &format!("mock/Temp+Secret{n:024}"),
        )
        .with_session_token(&format!(
            "IQoJb3JpZ2luX2VjEMOCK{n:04}//////////wEaCXVzLWVhc3QtMSJHMEUCIQ=="
        ));
        let expiry = SystemTime::now() + lifetime;
        ring.keys.insert(
            credentials.access_key_id.clone(),
            (credentials.clone(), expiry),
        );
        (credentials, expiry)
    }

    /// What the ring knows of `access_key_id`.
    pub fn standing(&self, access_key_id: &str) -> Standing {
        match lock(&self.0).keys.get(access_key_id) {
            Some((creds, expiry)) if *expiry > SystemTime::now() => Standing::Valid(creds.clone()),
            Some(_) => Standing::Expired,
            None => Standing::Unknown,
        }
    }

    /// Makes every key issued so far expired.
    pub fn expire_all(&self) {
        let past = SystemTime::now() - Duration::from_secs(1);
        for (_, expiry) in lock(&self.0).keys.values_mut() {
            *expiry = past;
        }
    }

    /// Forgets every key issued so far.
    pub fn revoke_all(&self) {
        lock(&self.0).keys.clear();
    }

    /// How many key sets have been issued.
    pub fn issued(&self) -> usize {
        lock(&self.0).issued
    }
}

/// STS's query API and its XML, for the mock core.
pub struct Sts {
    keyring: Keyring,
    role_arn: Mutex<String>,
    token: Mutex<Option<String>>,
    lifetime: Mutex<Duration>,
    next_id: AtomicU64,
}

/// A running mock STS.
pub type MockSts = Mock<Sts>;

impl Mock<Sts> {
    /// STS issuing into `keyring`, for [`ROLE_ARN`], any web-identity token, keys that
    /// live an hour.
    pub async fn start_for(keyring: &Keyring) -> MockSts {
        Mock::start_with(Sts {
            keyring: keyring.clone(),
            role_arn: Mutex::new(ROLE_ARN.into()),
            token: Mutex::new(None),
            lifetime: Mutex::new(Duration::from_secs(3600)),
            next_id: AtomicU64::new(1),
        })
        .await
    }

    /// Accept only this web-identity token (`InvalidIdentityToken` otherwise).
    pub fn expect_token(&self, token: &str) {
        *lock(&self.provider().token) = Some(token.to_owned());
    }

    /// How long the keys issued from now on live.
    pub fn set_lifetime(&self, lifetime: Duration) {
        *lock(&self.provider().lifetime) = lifetime;
    }

    /// The `AssumeRoleWithWebIdentity` calls received, as their form fields.
    pub fn calls(&self) -> Vec<HashMap<String, String>> {
        self.requests().iter().map(|r| form(&r.body)).collect()
    }
}

impl Sts {
    fn request_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("{n:08x}-5b4f-11e9-8a5c-{:012x}", n * 7919)
    }

    fn refuse(&self, status: u16, code: &str, message: &str) -> Resolved {
        let kind = if status >= 500 { "Receiver" } else { "Sender" };
        let body = format!(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  <Error>\n    \
             <Type>{kind}</Type>\n    <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  \
             <RequestId>{}</RequestId>\n</ErrorResponse>\n",
            escape(code),
            escape(message),
            self.request_id()
        );
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
        Resolved::whole(status, "text/xml", Bytes::from(body))
    }
}

/// XML character data.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Provider for Sts {
    fn screen(&self, req: &Recorded) -> Option<Resolved> {
        if req.method != Method::POST || req.path_only() != "/" {
            return Some(self.refuse(404, "UnknownOperation", "Unknown operation."));
        }
        let fields = form(&req.body);
        let field = |name: &str| fields.get(name).filter(|v| !v.is_empty());
        match field("Action").map(String::as_str) {
            Some("AssumeRoleWithWebIdentity") => {}
            other => {
                let message = format!(
                    "Could not find operation {} for version 2011-06-15",
                    other.unwrap_or("")
                );
                return Some(self.refuse(400, "InvalidAction", &message));
            }
        }
        if field("Version").map(String::as_str) != Some("2011-06-15") {
            return Some(self.refuse(400, "InvalidAction", "Version must be 2011-06-15."));
        }
        for name in ["RoleArn", "RoleSessionName", "WebIdentityToken"] {
            if field(name).is_none() {
                let message = format!("The request must contain the parameter {name}");
                return Some(self.refuse(400, "MissingParameter", &message));
            }
        }
        let session = field("RoleSessionName").map_or("", String::as_str);
        if !(2..=64).contains(&session.len())
            || !session
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b))
        {
            let message = format!(
                "1 validation error detected: Value '{session}' at 'roleSessionName' failed to \
                 satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*"
            );
            return Some(self.refuse(400, "ValidationError", &message));
        }
        if let Some(expected) = lock(&self.token).as_deref()
            && field("WebIdentityToken").map(String::as_str) != Some(expected)
        {
            return Some(self.refuse(
                400,
                "InvalidIdentityToken",
                "Couldn't retrieve verification key from your identity provider,  please \
                 reference AssumeRoleWithWebIdentity documentation for requirements",
            ));
        }
        let role = lock(&self.role_arn).clone();
        if field("RoleArn").map(String::as_str) != Some(role.as_str()) {
            return Some(self.refuse(
                403,
                "AccessDenied",
                "Not authorized to perform sts:AssumeRoleWithWebIdentity",
            ));
        }
        None
    }

    fn render(&self, req: &Recorded, reply: &Reply) -> Resolved {
        if !matches!(reply.kind(), Kind::Ok) {
            return Resolved::unsupported("STS", reply);
        }
        let fields = form(&req.body);
        let session = fields.get("RoleSessionName").map_or("", String::as_str);
        let lifetime = *lock(&self.lifetime);
        let (creds, expiry) = self.keyring.issue(lifetime);
        let role = lock(&self.role_arn).clone();
        let role_name = role.rsplit('/').next().unwrap_or("role");
        let body = format!(
            r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:default:llmesh</SubjectFromWebIdentityToken>
    <Audience>sts.amazonaws.com</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::{ACCOUNT_ID}:assumed-role/{role_name}/{session}</Arn>
      <AssumedRoleId>AROAMOCKROLEID0000001:{session}</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>{}</SessionToken>
      <SecretAccessKey>{}</SecretAccessKey>
      <Expiration>{}</Expiration>
      <AccessKeyId>{}</AccessKeyId>
    </Credentials>
    <Provider>arn:aws:iam::{ACCOUNT_ID}:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/MOCK</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata>
    <RequestId>{}</RequestId>
  </ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>
"#,
            escape(creds.session_token.as_deref().unwrap_or("")),
            escape(&creds.secret_access_key),
            rfc3339(expiry, false),
            creds.access_key_id,
            self.request_id()
        );
        Resolved::whole(StatusCode::OK, "text/xml", Bytes::from(body))
    }

    fn error(&self, _req: &Recorded, failure: &Failure) -> Resolved {
        let code = failure.kind.as_deref().unwrap_or("InvalidIdentityToken");
        self.refuse(failure.status.as_u16(), code, &failure.message)
    }
}

/// The EKS Pod Identity agent, for the mock core.
pub struct Agent {
    keyring: Keyring,
    lifetime: Mutex<Duration>,
}

/// A running mock EKS Pod Identity agent.
pub type MockPodIdentity = Mock<Agent>;

impl Mock<Agent> {
    /// The agent issuing into `keyring` keys that live six hours (as the agent's do).
    pub async fn start_for(keyring: &Keyring) -> MockPodIdentity {
        Mock::start_with(Agent {
            keyring: keyring.clone(),
            lifetime: Mutex::new(Duration::from_secs(6 * 3600)),
        })
        .await
    }

    /// `AWS_CONTAINER_CREDENTIALS_FULL_URI` for this agent.
    pub fn full_uri(&self) -> String {
        format!("http://{}/v1/credentials", self.addr())
    }

    /// How long the keys issued from now on live.
    pub fn set_lifetime(&self, lifetime: Duration) {
        *lock(&self.provider().lifetime) = lifetime;
    }

    /// The `Authorization` of each request received.
    pub fn tokens_seen(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| r.header("authorization").unwrap_or("").to_owned())
            .collect()
    }
}

/// What Go's `http.Error` writes.
fn text_error(status: StatusCode, message: &str) -> Resolved {
    Resolved::whole(
        status,
        "text/plain; charset=utf-8",
        Bytes::from(format!("{message}\n")),
    )
    .with_header("x-content-type-options", "nosniff")
}

/// Whether `token` parses as a JWT whose claims have not expired, as the agent checks
/// before asking EKS Auth; the reason if not.
fn jwt_problem(token: &str) -> Option<String> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, claims, _signature] = parts.as_slice() else {
        return Some("token is malformed: token contains an invalid number of segments".into());
    };
    let json = |part: &str| -> Option<Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
    };
    if json(header).is_none() {
        return Some("token is malformed: could not JSON decode header".into());
    }
    let Some(claims) = json(claims) else {
        return Some("token is malformed: could not JSON decode claim".into());
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if claims["exp"].as_u64().is_some_and(|exp| exp <= now) {
        return Some("token has invalid claims: token is expired".into());
    }
    None
}

impl Provider for Agent {
    fn screen(&self, req: &Recorded) -> Option<Resolved> {
        if req.path_only() != "/v1/credentials" {
            return Some(text_error(StatusCode::NOT_FOUND, "404 page not found"));
        }
        let token = req.header("authorization").unwrap_or("");
        if token.is_empty() {
            return Some(text_error(
                StatusCode::BAD_REQUEST,
                "Service account token cannot be empty",
            ));
        }
        jwt_problem(token).map(|why| {
            text_error(
                StatusCode::BAD_REQUEST,
                &format!("Service account token cannot be parsed: {why}"),
            )
        })
    }

    fn render(&self, _req: &Recorded, reply: &Reply) -> Resolved {
        if !matches!(reply.kind(), Kind::Ok) {
            return Resolved::unsupported("EKS Pod Identity agent", reply);
        }
        let lifetime = *lock(&self.lifetime);
        let (creds, expiry) = self.keyring.issue(lifetime);
        let body = json!({
            "AccessKeyId": creds.access_key_id,
            "SecretAccessKey": creds.secret_access_key,
            "Token": creds.session_token,
            "AccountId": ACCOUNT_ID,
            "Expiration": rfc3339(expiry, true),
        });
        Resolved::whole(StatusCode::OK, "application/json", to_bytes(&body))
    }

    fn error(&self, _req: &Recorded, failure: &Failure) -> Resolved {
        text_error(failure.status, &failure.message)
    }
}

/// A well-formed JWT (unsigned payload, fake signature) with these claims, standing in
/// for a projected ServiceAccount token.
pub fn service_account_token(subject: &str, audience: &str, lifetime: Duration) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let header = json!({"alg": "RS256", "kid": "mock-kubernetes"});
    let claims = json!({
        "aud": [audience],
        "exp": now + lifetime.as_secs(),
        "iat": now,
        "iss": "https://oidc.eks.us-east-1.amazonaws.com/id/MOCK",
        "sub": subject,
    });
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(b"mock-signature")
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn agent_tokens_must_be_unexpired_jwts() {
        let good = service_account_token(
            "system:serviceaccount:a:b",
            "pods.eks.amazonaws.com",
            Duration::from_secs(60),
        );
        assert_eq!(jwt_problem(&good), None);
        assert!(jwt_problem("opaque").unwrap().contains("segments"));
        let expired = service_account_token("s", "a", Duration::ZERO);
        assert!(jwt_problem(&expired).unwrap().contains("expired"));
    }

    #[test]
    fn keyrings_know_valid_expired_and_unknown_keys() {
        let ring = Keyring::default();
        let (creds, _) = ring.issue(Duration::from_secs(60));
        assert!(creds.access_key_id.starts_with("ASIA"));
        assert_eq!(
            ring.standing(&creds.access_key_id),
            Standing::Valid(creds.clone())
        );
        ring.expire_all();
        assert_eq!(ring.standing(&creds.access_key_id), Standing::Expired);
        ring.revoke_all();
        assert_eq!(ring.standing(&creds.access_key_id), Standing::Unknown);
        assert_eq!(ring.issued(), 1);
    }
}

//! Google's token services without a key file, as mocks.
//!
//! **The metadata server** ([`MockMetadata`]), as GCE and GKE's Workload Identity serve
//! it: `GET /computeMetadata/v1/instance/service-accounts/default/token` answers
//! `{"access_token", "expires_in", "token_type": "Bearer"}`, `GET
//! /computeMetadata/v1/project/project-id` the project as plain text. Every answer carries
//! `Metadata-Flavor: Google`; a request without that header, or with `X-Forwarded-For`,
//! gets the server's 403 page, an unknown path its 404 page.
//!
//! **Google STS and IAM Credentials** ([`MockGoogleSts`], both on one port):
//! `POST /v1/token` is RFC 8693's token exchange as Google documents it (a form with
//! `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`, `audience` — the
//! workload identity pool provider —, `scope`, `requested_token_type`,
//! `subject_token`, `subject_token_type`), answering `{"access_token",
//! "issued_token_type", "token_type": "Bearer", "expires_in"}` or OAuth's `{"error",
//! "error_description"}`. `POST /v1/projects/-/serviceAccounts/{email}:generateAccessToken`
//! with that token as `Authorization: Bearer` and `{"scope": [...], "lifetime": "3600s"}`
//! answers `{"accessToken", "expireTime"}` or Google's `{"error": {"code", "message",
//! "status"}}`.
//!
//! Tokens go into the [`Tokens`] the mock Vertex AI checks (`MockGemini::tokens`).

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Tokens, form, rfc3339};
use crate::mock::{Failure, Kind, Mock, Provider, Recorded, Reply, Resolved, lock, to_bytes};

/// The workload identity pool provider [`MockGoogleSts`] exchanges tokens for.
pub const AUDIENCE: &str = "//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/llmesh-pool/providers/kubernetes";
/// The service account [`MockGoogleSts`] lets the pool impersonate.
pub const SERVICE_ACCOUNT: &str = "vertex-caller@mock-project.iam.gserviceaccount.com";
/// The scope Vertex AI needs.
const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// The metadata server, for the mock core.
pub struct Metadata {
    tokens: Tokens,
    project: String,
    lifetime: Mutex<Duration>,
}

/// A running mock metadata server.
pub type MockMetadata = Mock<Metadata>;

impl Mock<Metadata> {
    /// A metadata server of `project` issuing into `tokens` tokens that live an hour.
    pub async fn start_for(tokens: &Tokens, project: &str) -> MockMetadata {
        Mock::start_with(Metadata {
            tokens: tokens.clone(),
            project: project.to_owned(),
            lifetime: Mutex::new(Duration::from_secs(3599)),
        })
        .await
    }

    /// `GCE_METADATA_HOST` for this server: `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.addr().to_string()
    }

    /// How long the tokens issued from now on live.
    pub fn set_lifetime(&self, lifetime: Duration) {
        *lock(&self.provider().lifetime) = lifetime;
    }

    /// How many token requests (not project asks) arrived.
    pub fn token_requests(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.path_only().ends_with("/token"))
            .count()
    }
}

const TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";
const PROJECT_PATH: &str = "/computeMetadata/v1/project/project-id";

fn page(status: StatusCode, text: &str) -> Resolved {
    let body = format!(
        "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error {} \
         ({})</title>\n  <p><b>{}.</b> <ins>That’s an error.</ins>\n  <p>{text}  <ins>That’s all \
         we know.</ins>\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        status.as_u16()
    );
    Resolved::whole(status, "text/html; charset=UTF-8", Bytes::from(body))
}

impl Provider for Metadata {
    fn screen(&self, req: &Recorded) -> Option<Resolved> {
        if req.header("metadata-flavor") != Some("Google") {
            return Some(page(
                StatusCode::FORBIDDEN,
                "Your client does not have permission to get URL from this server. Missing \
                 Metadata-Flavor:Google header.",
            ));
        }
        if req.headers.contains_key("x-forwarded-for") {
            return Some(page(
                StatusCode::FORBIDDEN,
                "Your client does not have permission to get URL from this server.",
            ));
        }
        match (&req.method, req.path_only()) {
            (&Method::GET, TOKEN_PATH) => None,
            (&Method::GET, PROJECT_PATH) => Some(Resolved::whole(
                StatusCode::OK,
                "application/text",
                Bytes::from(self.project.clone()),
            )),
            _ => Some(page(
                StatusCode::NOT_FOUND,
                "The requested URL was not found on this server.",
            )),
        }
    }

    fn render(&self, _req: &Recorded, reply: &Reply) -> Resolved {
        if !matches!(reply.kind(), Kind::Ok) {
            return Resolved::unsupported("metadata server", reply);
        }
        let lifetime = *lock(&self.lifetime);
        let token = self.tokens.issue("ya29.c.metadata-", lifetime);
        let body = json!({
            "access_token": token,
            "expires_in": lifetime.as_secs(),
            "token_type": "Bearer",
        });
        Resolved::whole(StatusCode::OK, "application/json", to_bytes(&body))
    }

    fn error(&self, _req: &Recorded, failure: &Failure) -> Resolved {
        Resolved::whole(
            failure.status,
            "text/plain; charset=utf-8",
            Bytes::from(format!("{}\n", failure.message)),
        )
    }

    fn stamp(&self) -> Vec<(HeaderName, HeaderValue)> {
        vec![(
            HeaderName::from_static("metadata-flavor"),
            HeaderValue::from_static("Google"),
        )]
    }
}

/// Google STS and IAM Credentials, for the mock core.
pub struct Federation {
    tokens: Tokens,
    subject: Mutex<Option<String>>,
    lifetime: Mutex<Duration>,
}

/// A running mock of Google STS and IAM Credentials.
pub type MockGoogleSts = Mock<Federation>;

impl Mock<Federation> {
    /// STS for [`AUDIENCE`] and IAM Credentials for [`SERVICE_ACCOUNT`], issuing into
    /// `tokens` tokens that live an hour.
    pub async fn start_for(tokens: &Tokens) -> MockGoogleSts {
        Mock::start_with(Federation {
            tokens: tokens.clone(),
            subject: Mutex::new(None),
            lifetime: Mutex::new(Duration::from_secs(3600)),
        })
        .await
    }

    /// Accept only this subject token (`invalid_grant` otherwise).
    pub fn expect_subject(&self, token: &str) {
        *lock(&self.provider().subject) = Some(token.to_owned());
    }

    /// `token_url` of a credential configuration.
    pub fn token_url(&self) -> String {
        format!("{}/v1/token", self.base_url())
    }

    /// `service_account_impersonation_url` of a credential configuration.
    pub fn impersonation_url(&self) -> String {
        format!(
            "{}/v1/projects/-/serviceAccounts/{SERVICE_ACCOUNT}:generateAccessToken",
            self.base_url()
        )
    }

    /// An `external_account` credential configuration for this mock, reading the subject
    /// token from `token_file`, impersonating [`SERVICE_ACCOUNT`] when asked.
    pub fn credential_config(&self, token_file: &str, impersonate: bool) -> String {
        let mut config = json!({
            "universe_domain": "googleapis.com",
            "type": "external_account",
            "audience": AUDIENCE,
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": self.token_url(),
            "credential_source": {"file": token_file, "format": {"type": "text"}},
        });
        if impersonate {
            config["service_account_impersonation_url"] = json!(self.impersonation_url());
        }
        serde_json::to_string_pretty(&config).unwrap_or_default()
    }

    /// The token exchanges received, as their form fields.
    pub fn exchanges(&self) -> Vec<std::collections::HashMap<String, String>> {
        self.requests()
            .iter()
            .filter(|r| r.path_only() == "/v1/token")
            .map(|r| form(&r.body))
            .collect()
    }

    /// The `generateAccessToken` requests received.
    pub fn impersonations(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path_only().ends_with(":generateAccessToken"))
            .collect()
    }
}

fn oauth_error(status: u16, error: &str, description: &str) -> Resolved {
    let body = json!({"error": error, "error_description": description});
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    Resolved::whole(status, "application/json; charset=utf-8", to_bytes(&body))
}

fn google_error(status: u16, kind: &str, message: &str) -> Resolved {
    let body = json!({"error": {"code": status, "message": message, "status": kind}});
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    Resolved::whole(status, "application/json; charset=UTF-8", to_bytes(&body))
}

/// Which of the two services a request is for.
enum Api {
    Sts,
    Iam(String),
}

fn api(req: &Recorded) -> Option<Api> {
    if req.method != Method::POST {
        return None;
    }
    let path = req.path_only();
    if path == "/v1/token" {
        return Some(Api::Sts);
    }
    let account = path
        .strip_prefix("/v1/projects/-/serviceAccounts/")?
        .strip_suffix(":generateAccessToken")?;
    Some(Api::Iam(account.to_owned()))
}

impl Federation {
    fn screen_sts(&self, req: &Recorded) -> Option<Resolved> {
        if !req
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"))
        {
            return Some(oauth_error(400, "invalid_request", "Invalid Content-Type."));
        }
        let fields = form(&req.body);
        let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or("");
        if field("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange" {
            let message = format!("Unsupported grant type: {}", field("grant_type"));
            return Some(oauth_error(400, "unsupported_grant_type", &message));
        }
        if field("requested_token_type") != "urn:ietf:params:oauth:token-type:access_token" {
            return Some(oauth_error(
                400,
                "invalid_request",
                "The requested token type must be urn:ietf:params:oauth:token-type:access_token.",
            ));
        }
        if !matches!(
            field("subject_token_type"),
            "urn:ietf:params:oauth:token-type:jwt" | "urn:ietf:params:oauth:token-type:id_token"
        ) {
            return Some(oauth_error(
                400,
                "invalid_request",
                "Invalid subject token type.",
            ));
        }
        if field("audience") != AUDIENCE {
            return Some(oauth_error(
                400,
                "invalid_target",
                "The target service indicated by the \"audience\" parameters is invalid. This \
                 might either be because the pool or provider is disabled or deleted or because \
                 it doesn't exist.",
            ));
        }
        if !field("scope").split(' ').any(|s| s == CLOUD_PLATFORM) {
            return Some(oauth_error(400, "invalid_scope", "The scope is invalid."));
        }
        let subject = field("subject_token");
        let expected = lock(&self.subject).clone();
        if subject.is_empty() || expected.is_some_and(|e| e != subject) {
            return Some(oauth_error(
                400,
                "invalid_grant",
                "The incoming JWT is not valid for the audience of the workload identity pool \
                 provider.",
            ));
        }
        None
    }

    fn screen_iam(&self, req: &Recorded, account: &str) -> Option<Resolved> {
        if !self.tokens.bearer_valid(&req.headers) {
            return Some(google_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, \
                 login cookie or other valid authentication credential.",
            ));
        }
        if account != SERVICE_ACCOUNT {
            return Some(google_error(
                403,
                "PERMISSION_DENIED",
                "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may \
                 not exist).",
            ));
        }
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let scoped = body["scope"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s == CLOUD_PLATFORM));
        if !scoped {
            return Some(google_error(400, "INVALID_ARGUMENT", "Scope required."));
        }
        let lifetime = body["lifetime"].as_str().unwrap_or("3600s");
        let secs = lifetime
            .strip_suffix('s')
            .and_then(|s| s.parse::<u64>().ok());
        if !secs.is_some_and(|s| (1..=43_200).contains(&s)) {
            return Some(google_error(
                400,
                "INVALID_ARGUMENT",
                &format!("Invalid value at 'lifetime' ({lifetime:?})."),
            ));
        }
        None
    }
}

impl Provider for Federation {
    fn screen(&self, req: &Recorded) -> Option<Resolved> {
        match api(req) {
            Some(Api::Sts) => self.screen_sts(req),
            Some(Api::Iam(account)) => self.screen_iam(req, &account),
            None => Some(google_error(404, "NOT_FOUND", "Method not found.")),
        }
    }

    fn render(&self, req: &Recorded, reply: &Reply) -> Resolved {
        if !matches!(reply.kind(), Kind::Ok) {
            return Resolved::unsupported("Google STS", reply);
        }
        let lifetime = *lock(&self.lifetime);
        match api(req) {
            Some(Api::Sts) => {
                let token = self.tokens.issue("ya29.d.federated-", lifetime);
                let body = json!({
                    "access_token": token,
                    "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                    "token_type": "Bearer",
                    "expires_in": lifetime.as_secs(),
                });
                Resolved::whole(
                    StatusCode::OK,
                    "application/json; charset=utf-8",
                    to_bytes(&body),
                )
            }
            _ => {
                let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
                let asked = body["lifetime"]
                    .as_str()
                    .and_then(|l| l.strip_suffix('s'))
                    .and_then(|s| s.parse().ok())
                    .map_or(lifetime, Duration::from_secs);
                let token = self.tokens.issue("ya29.c.impersonated-", asked);
                let body = json!({
                    "accessToken": token,
                    "expireTime": rfc3339(SystemTime::now() + asked, false),
                });
                Resolved::whole(
                    StatusCode::OK,
                    "application/json; charset=UTF-8",
                    to_bytes(&body),
                )
            }
        }
    }

    fn error(&self, req: &Recorded, failure: &Failure) -> Resolved {
        let status = failure.status.as_u16();
        match api(req) {
            Some(Api::Sts) => oauth_error(
                status,
                failure.kind.as_deref().unwrap_or("invalid_grant"),
                &failure.message,
            ),
            _ => google_error(
                status,
                failure.kind.as_deref().unwrap_or("PERMISSION_DENIED"),
                &failure.message,
            ),
        }
    }
}

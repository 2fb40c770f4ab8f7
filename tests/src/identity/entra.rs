//! Microsoft Entra ID's token endpoint, as workload identity federation uses it, as a
//! mock ([`MockEntra`]).
//!
//! `POST /{tenant}/oauth2/v2.0/token` with the form of the client credentials grant and
//! a federated assertion: `client_id`, `grant_type=client_credentials`,
//! `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`,
//! `client_assertion` (the projected ServiceAccount token), `scope`. It answers
//! `{"token_type": "Bearer", "expires_in", "ext_expires_in", "access_token"}`, or
//! Entra's error, `{"error", "error_description": "AADSTS…: …", "error_codes",
//! "timestamp", "trace_id", "correlation_id", "error_uri"}`, with the AADSTS codes Entra
//! uses: an unknown tenant (90002), a wrong grant (70003), an unknown client (700016), a
//! missing or wrong assertion type (7000218), an assertion no federated credential
//! matches (700211, 401), a bad scope (70011).
//!
//! Tokens go into the [`Tokens`] the mock Azure OpenAI checks (`OpenAi::with_entra`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use http::{Method, StatusCode};
use serde_json::json;

use super::{Tokens, form, rfc3339};
use crate::mock::{Failure, Kind, Mock, Provider, Recorded, Reply, Resolved, lock, to_bytes};

/// The tenant [`MockEntra`] issues for.
pub const TENANT_ID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// The client (managed identity or app registration) it knows.
pub const CLIENT_ID: &str = "5e3a2b1c-0d9f-4e8a-b7c6-1a2b3c4d5e6f";
/// Azure OpenAI's scope.
pub const SCOPE: &str = "https://cognitiveservices.azure.com/.default";

/// Entra ID's token endpoint, for the mock core.
pub struct Entra {
    tokens: Tokens,
    assertion: Mutex<Option<String>>,
    lifetime: Mutex<Duration>,
    next: AtomicU64,
}

/// A running mock Entra ID.
pub type MockEntra = Mock<Entra>;

impl Mock<Entra> {
    /// Entra ID for [`TENANT_ID`] and [`CLIENT_ID`], issuing into `tokens` tokens that
    /// live an hour.
    pub async fn start_for(tokens: &Tokens) -> MockEntra {
        Mock::start_with(Entra {
            tokens: tokens.clone(),
            assertion: Mutex::new(None),
            lifetime: Mutex::new(Duration::from_secs(3599)),
            next: AtomicU64::new(1),
        })
        .await
    }

    /// Accept only this assertion (AADSTS700211 otherwise), as a federated credential
    /// matches one issuer and subject.
    pub fn expect_assertion(&self, token: &str) {
        *lock(&self.provider().assertion) = Some(token.to_owned());
    }

    /// How long the tokens issued from now on live.
    pub fn set_lifetime(&self, lifetime: Duration) {
        *lock(&self.provider().lifetime) = lifetime;
    }

    /// `AZURE_AUTHORITY_HOST` for this mock (with the trailing slash the webhook writes).
    pub fn authority_host(&self) -> String {
        format!("{}/", self.base_url())
    }

    /// The token requests received, as their form fields.
    pub fn grants(&self) -> Vec<std::collections::HashMap<String, String>> {
        self.requests().iter().map(|r| form(&r.body)).collect()
    }
}

impl Entra {
    fn refuse(&self, status: u16, error: &str, code: u32, description: &str) -> Resolved {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let trace = format!("{n:08x}-1b2c-4d5e-8f90-{:012x}", n * 31);
        let correlation = format!("{:08x}-aaaa-4bbb-8ccc-{n:012x}", n * 17);
        // Entra writes `2024-01-01 12:00:00Z`.
        let now = rfc3339(SystemTime::now(), false).replace('T', " ");
        let body = json!({
            "error": error,
            "error_description": format!(
                "AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {now}"
            ),
            "error_codes": [code],
            "timestamp": now,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        });
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
        Resolved::whole(status, "application/json; charset=utf-8", to_bytes(&body))
    }
}

impl Provider for Entra {
    fn screen(&self, req: &Recorded) -> Option<Resolved> {
        let tenant = req
            .path_only()
            .strip_prefix('/')
            .and_then(|p| p.strip_suffix("/oauth2/v2.0/token"));
        let Some(tenant) = tenant.filter(|_| req.method == Method::POST) else {
            return Some(self.refuse(
                404,
                "invalid_request",
                900_561,
                "The endpoint only accepts POST requests.",
            ));
        };
        if tenant != TENANT_ID {
            let message = format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID \
                 and are signing into the correct cloud."
            );
            return Some(self.refuse(400, "invalid_request", 90_002, &message));
        }
        let fields = form(&req.body);
        let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or("");
        if field("grant_type") != "client_credentials" {
            return Some(self.refuse(
                400,
                "unsupported_grant_type",
                70_003,
                "The app requested an unsupported grant type.",
            ));
        }
        if field("client_id") != CLIENT_ID {
            let message = format!(
                "Application with identifier '{}' was not found in the directory '{TENANT_ID}'.",
                field("client_id")
            );
            return Some(self.refuse(400, "unauthorized_client", 700_016, &message));
        }
        if field("client_assertion_type")
            != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        {
            return Some(self.refuse(
                401,
                "invalid_client",
                7_000_218,
                "The request body must contain the following parameter: 'client_assertion' or \
                 'client_secret'.",
            ));
        }
        let assertion = field("client_assertion");
        let expected = lock(&self.assertion).clone();
        if assertion.is_empty() || expected.is_some_and(|e| e != assertion) {
            return Some(self.refuse(
                401,
                "invalid_client",
                700_211,
                "No matching federated identity record found for presented assertion issuer.",
            ));
        }
        if field("scope") != SCOPE {
            let message = format!(
                "The provided value for the input parameter 'scope' is not valid. The scope {} is \
                 not valid.",
                field("scope")
            );
            return Some(self.refuse(400, "invalid_scope", 70_011, &message));
        }
        None
    }

    fn render(&self, _req: &Recorded, reply: &Reply) -> Resolved {
        if !matches!(reply.kind(), Kind::Ok) {
            return Resolved::unsupported("Entra ID", reply);
        }
        let lifetime = *lock(&self.lifetime);
        let token = self
            .tokens
            .issue("eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.mock-entra-", lifetime);
        let body = json!({
            "token_type": "Bearer",
            "expires_in": lifetime.as_secs(),
            "ext_expires_in": lifetime.as_secs(),
            "access_token": token,
        });
        Resolved::whole(
            StatusCode::OK,
            "application/json; charset=utf-8",
            to_bytes(&body),
        )
    }

    fn error(&self, _req: &Recorded, failure: &Failure) -> Resolved {
        let error = failure.kind.as_deref().unwrap_or("invalid_client");
        let code = failure
            .code
            .as_deref()
            .and_then(|c| c.parse().ok())
            .unwrap_or(700_211);
        self.refuse(failure.status.as_u16(), error, code, &failure.message)
    }
}

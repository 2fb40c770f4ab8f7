//! The identity mocks' own tests, over real HTTP: what each answers and refuses, and
//! that what they issue is what the provider mocks accept.

// Test code may panic on broken expectations; that is how it reports them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use super::aws::{ROLE_ARN, Standing, service_account_token};
use super::entra::{CLIENT_ID, SCOPE, TENANT_ID};
use super::gcp::{AUDIENCE, SERVICE_ACCOUNT};
use super::*;
use crate::{MockBedrock, MockGemini, Reply};

async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, HeaderMap, String) {
    let mut request = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let response = Client::builder(TokioExecutor::new())
        .build_http()
        .request(request)
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

fn encode(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", crate::mock::uri_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn sts_form(role: &str, token: &str) -> String {
    encode(&[
        ("Action", "AssumeRoleWithWebIdentity"),
        ("Version", "2011-06-15"),
        ("RoleArn", role),
        ("RoleSessionName", "llmesh-test"),
        ("WebIdentityToken", token),
    ])
}

#[tokio::test]
async fn sts_issues_keys_the_mock_bedrock_accepts_as_documented_xml() {
    let bedrock = MockBedrock::start().await;
    let sts = MockSts::start_for(bedrock.keyring()).await;
    sts.expect_token("web-identity");
    let url = format!("{}/", sts.base_url());
    let (status, headers, body) = send(
        Method::POST,
        &url,
        &[FORM],
        &sts_form(ROLE_ARN, "web-identity"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["content-type"], "text/xml");
    assert!(body.starts_with(
        "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
    ));
    for element in [
        "<AssumeRoleWithWebIdentityResult>",
        "<AssumedRoleUser>",
        "<Arn>arn:aws:sts::123456789012:assumed-role/llmesh-bedrock/llmesh-test</Arn>",
        "<AccessKeyId>ASIAMOCKTEMP00000001</AccessKeyId>",
        "<SessionToken>IQoJb3JpZ2luX2VjEMOCK0001",
        "<Expiration>",
        "<RequestId>",
    ] {
        assert!(body.contains(element), "{element} in {body}");
    }
    assert!(matches!(
        bedrock.keyring().standing("ASIAMOCKTEMP00000001"),
        Standing::Valid(_)
    ));

    let refusals = [
        (sts_form(ROLE_ARN, "other"), 400, "InvalidIdentityToken"),
        (
            sts_form("arn:aws:iam::1:role/x", "web-identity"),
            403,
            "AccessDenied",
        ),
        (
            encode(&[("Action", "GetCallerIdentity"), ("Version", "2011-06-15")]),
            400,
            "InvalidAction",
        ),
        (
            encode(&[
                ("Action", "AssumeRoleWithWebIdentity"),
                ("Version", "2011-06-15"),
            ]),
            400,
            "MissingParameter",
        ),
    ];
    for (form, code, name) in refusals {
        let (status, _, body) = send(Method::POST, &url, &[FORM], &form).await;
        assert_eq!(status.as_u16(), code, "{body}");
        assert!(
            body.starts_with("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">")
        );
        assert!(
            body.contains("<Type>Sender</Type>") && body.contains(&format!("<Code>{name}</Code>")),
            "{body}"
        );
    }
    sts.enqueue(Reply::error(
        400,
        "Token expired: current date/time 1 must be before the expiration date/time 0",
        "ExpiredTokenException",
        None,
    ));
    let (status, _, body) = send(
        Method::POST,
        &url,
        &[FORM],
        &sts_form(ROLE_ARN, "web-identity"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("<Code>ExpiredTokenException</Code>"),
        "{body}"
    );
    assert_eq!(bedrock.keyring().issued(), 1);
}

#[tokio::test]
async fn the_pod_identity_agent_wants_an_unexpired_jwt_and_answers_json() {
    let keyring = Keyring::default();
    let agent = MockPodIdentity::start_for(&keyring).await;
    let token = service_account_token(
        "system:serviceaccount:default:app",
        "pods.eks.amazonaws.com",
        Duration::from_secs(600),
    );
    let (status, headers, body) = send(
        Method::GET,
        &agent.full_uri(),
        &[("authorization", &token)],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["content-type"], "application/json");
    let creds: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(creds["AccountId"], "123456789012");
    for field in ["AccessKeyId", "SecretAccessKey", "Token", "Expiration"] {
        assert!(creds[field].is_string(), "{field}: {body}");
    }
    let (status, _, body) = send(Method::GET, &agent.full_uri(), &[], "").await;
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::BAD_REQUEST,
            "Service account token cannot be empty\n"
        )
    );
    let (status, _, body) = send(
        Method::GET,
        &agent.full_uri(),
        &[("authorization", "opaque")],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.starts_with("Service account token cannot be parsed"),
        "{body}"
    );
    assert_eq!(agent.tokens_seen()[0], token);
}

#[tokio::test]
async fn the_metadata_server_wants_its_header_and_issues_vertex_tokens() {
    let vertex = MockGemini::start().await;
    let metadata = MockMetadata::start_for(&vertex.tokens(), "mock-project").await;
    let base = format!("http://{}/computeMetadata/v1", metadata.host());
    let flavor = ("metadata-flavor", "Google");
    let token_url = format!("{base}/instance/service-accounts/default/token");
    let (status, headers, body) = send(Method::GET, &token_url, &[flavor], "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["metadata-flavor"], "Google");
    let token: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["expires_in"], 3599);
    assert!(
        vertex
            .tokens()
            .valid(token["access_token"].as_str().unwrap())
    );
    let (status, _, body) = send(
        Method::GET,
        &format!("{base}/project/project-id"),
        &[flavor],
        "",
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "mock-project"));
    let (status, _, body) = send(Method::GET, &token_url, &[], "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body.contains("Missing Metadata-Flavor:Google header."),
        "{body}"
    );
    let (status, _, _) = send(
        Method::GET,
        &token_url,
        &[flavor, ("x-forwarded-for", "10.0.0.1")],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = send(Method::GET, &format!("{base}/instance/nope"), &[flavor], "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(metadata.token_requests(), 3);
}

#[tokio::test]
async fn google_sts_exchanges_and_iam_impersonates() {
    let vertex = MockGemini::start().await;
    let google = MockGoogleSts::start_for(&vertex.tokens()).await;
    google.expect_subject("k8s-token");
    let exchange = |audience: &str, subject: &str| {
        encode(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("audience", audience),
            ("scope", "https://www.googleapis.com/auth/cloud-platform"),
            (
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            ("subject_token", subject),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
        ])
    };
    let (status, _, body) = send(
        Method::POST,
        &google.token_url(),
        &[FORM],
        &exchange(AUDIENCE, "k8s-token"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sts: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        sts["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert_eq!(sts["token_type"], "Bearer");
    let federated = sts["access_token"].as_str().unwrap().to_owned();
    for (form, error) in [
        (exchange(AUDIENCE, "other"), "invalid_grant"),
        (
            exchange("//iam.googleapis.com/other", "k8s-token"),
            "invalid_target",
        ),
        (
            encode(&[("grant_type", "password")]),
            "unsupported_grant_type",
        ),
    ] {
        let (status, _, body) = send(Method::POST, &google.token_url(), &[FORM], &form).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap()["error"],
            error,
            "{body}"
        );
    }
    let asked =
        json!({"scope": ["https://www.googleapis.com/auth/cloud-platform"], "lifetime": "1200s"})
            .to_string();
    let bearer = format!("Bearer {federated}");
    let json_type = ("content-type", "application/json");
    let (status, _, body) = send(
        Method::POST,
        &google.impersonation_url(),
        &[json_type, ("authorization", &bearer)],
        &asked,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token: Value = serde_json::from_str(&body).unwrap();
    assert!(
        vertex
            .tokens()
            .valid(token["accessToken"].as_str().unwrap())
    );
    assert!(token["expireTime"].as_str().unwrap().ends_with('Z'));
    let (status, _, body) = send(
        Method::POST,
        &google.impersonation_url(),
        &[json_type],
        &asked,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["status"],
        "UNAUTHENTICATED"
    );
    let other = google
        .impersonation_url()
        .replace(SERVICE_ACCOUNT, "x@p.iam.gserviceaccount.com");
    let (status, _, body) = send(
        Method::POST,
        &other,
        &[json_type, ("authorization", &bearer)],
        &asked,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["code"],
        403
    );
}

#[tokio::test]
async fn entra_issues_tokens_for_the_federated_client_and_says_aadsts() {
    let tokens = Tokens::default();
    let entra = MockEntra::start_for(&tokens).await;
    entra.expect_assertion("eyJ.azure.token");
    let url = format!("{}{TENANT_ID}/oauth2/v2.0/token", entra.authority_host());
    let grant = |client: &str, assertion: &str, scope: &str| {
        encode(&[
            ("client_id", client),
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
            ("scope", scope),
        ])
    };
    let (status, _, body) = send(
        Method::POST,
        &url,
        &[FORM],
        &grant(CLIENT_ID, "eyJ.azure.token", SCOPE),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (token["token_type"].as_str(), token["expires_in"].as_u64()),
        (Some("Bearer"), Some(3599))
    );
    assert_eq!(token["ext_expires_in"], 3599);
    assert!(tokens.valid(token["access_token"].as_str().unwrap()));
    for (form, status, error, code) in [
        (
            grant(CLIENT_ID, "eyJ.other", SCOPE),
            401,
            "invalid_client",
            700_211,
        ),
        (
            grant(
                "00000000-0000-0000-0000-000000000000",
                "eyJ.azure.token",
                SCOPE,
            ),
            400,
            "unauthorized_client",
            700_016,
        ),
        (
            grant(
                CLIENT_ID,
                "eyJ.azure.token",
                "https://management.azure.com/.default",
            ),
            400,
            "invalid_scope",
            70_011,
        ),
    ] {
        let (got, _, body) = send(Method::POST, &url, &[FORM], &form).await;
        assert_eq!(got.as_u16(), status, "{body}");
        let said: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(said["error"], error);
        assert_eq!(said["error_codes"], json!([code]));
        assert!(
            said["error_description"]
                .as_str()
                .unwrap()
                .starts_with(&format!("AADSTS{code}: "))
        );
        assert!(said["trace_id"].is_string() && said["correlation_id"].is_string());
    }
    let other_tenant = url.replace(TENANT_ID, "contoso.onmicrosoft.com");
    let (status, _, body) = send(
        Method::POST,
        &other_tenant,
        &[FORM],
        &grant(CLIENT_ID, "eyJ.azure.token", SCOPE),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("AADSTS90002"), "{body}");
}

#[tokio::test]
async fn azure_paths_with_entra_take_only_valid_bearer_tokens() {
    let tokens = Tokens::default();
    let openai = crate::Mock::start_with(crate::openai::OpenAi::with_entra(&tokens)).await;
    let url = format!(
        "http://{}/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21",
        openai.addr()
    );
    let chat = json!({"messages": [{"role": "user", "content": "hi"}]}).to_string();
    let json_type = ("content-type", "application/json");
    let (status, _, body) = send(Method::POST, &url, &[json_type, ("api-key", "k")], &chat).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("Access token is missing, invalid"), "{body}");
    let bearer = format!("Bearer {}", tokens.issue("entra-", Duration::from_secs(60)));
    let (status, _, body) = send(
        Method::POST,
        &url,
        &[json_type, ("authorization", &bearer)],
        &chat,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    tokens.revoke_all();
    let (status, _, _) = send(
        Method::POST,
        &url,
        &[json_type, ("authorization", &bearer)],
        &chat,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

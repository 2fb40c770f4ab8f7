use std::collections::HashMap;

use super::*;
use crate::provider::identity::fake::Fake;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn file(name: &str, contents: &str) -> String {
    let dir = std::env::temp_dir().join(format!("llmesh-gcp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.to_str().unwrap().to_owned()
}

const AUDIENCE: &str = "//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/pool/providers/k8s";

fn config(source: serde_json::Value, impersonate: bool) -> String {
    let mut config = json!({
        "universe_domain": "googleapis.com",
        "type": "external_account",
        "audience": AUDIENCE,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": "https://sts.googleapis.com/v1/token",
        "credential_source": source,
    });
    if impersonate {
        config["service_account_impersonation_url"] = json!(
            "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/vertex@proj.iam.gserviceaccount.com:generateAccessToken"
        );
        config["service_account_impersonation"] = json!({"token_lifetime_seconds": 1800});
    }
    config.to_string()
}

#[tokio::test]
async fn metadata_tokens_come_with_the_flavor_header_from_the_named_host() {
    let fake = Fake::new();
    fake.answer(
        200,
        r#"{"access_token":"ya29.metadata","expires_in":3599,"token_type":"Bearer"}"#,
    );
    let http: Arc<dyn Transport> = fake.clone();
    let flow = Metadata::from_env(&env(&[("GCE_METADATA_HOST", "127.0.0.1:8080")]), &http).unwrap();
    let token = flow.fetch().await.unwrap();
    assert_eq!(token.value, "Bearer ya29.metadata");
    assert_eq!(token.lifetime, Duration::from_secs(3599));
    let seen = &fake.seen()[0];
    assert_eq!(
        seen.uri,
        "http://127.0.0.1:8080/computeMetadata/v1/instance/service-accounts/default/token"
    );
    assert_eq!(seen.header("metadata-flavor"), "Google");
    let default = Metadata::from_env(&env(&[]), &http).unwrap();
    assert_eq!(
        default.token.to_string(),
        "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token"
    );
    assert!(Metadata::from_env(&env(&[("GCE_METADATA_HOST", "evil/x?")]), &http).is_err());
    fake.set(404, "Not Found\n");
    let err = flow.fetch().await.unwrap_err();
    assert!(err.contains("404 Not Found (Not Found)"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn the_project_is_learnt_once_after_the_metadata_server_wakes_up() {
    let fake = Fake::new();
    fake.answer(503, "");
    fake.answer(200, "mock-project\n");
    let cache = ProjectCache::default();
    let pairs = env(&[("GCE_METADATA_HOST", "127.0.0.1:1")]);
    assert_eq!(cache.known(), None);
    assert_eq!(
        cache.discover(&pairs, &*fake).await.unwrap(),
        "mock-project"
    );
    assert_eq!(cache.known().as_deref(), Some("mock-project"));
    assert_eq!(
        cache.discover(&pairs, &*fake).await.unwrap(),
        "mock-project"
    );
    let seen = fake.seen();
    assert_eq!(seen.len(), 2, "asked again only after the 503");
    assert_eq!(
        seen[1].uri,
        "http://127.0.0.1:1/computeMetadata/v1/project/project-id"
    );
    assert_eq!(seen[1].header("metadata-flavor"), "Google");

    let down = Fake::new();
    down.answer(500, "");
    let failing = ProjectCache::default();
    assert_eq!(failing.failure(), "the metadata server was not asked");
    let err = failing.discover(&pairs, &*down).await.unwrap_err();
    assert!(err.contains("cannot learn the project"), "{err}");
    assert_eq!(failing.failure(), err);
    assert_eq!(down.seen().len(), 4, "one ask and three retries");
}

#[tokio::test]
async fn federation_exchanges_the_file_token_then_impersonates() {
    let subject = file("wif-token", "eyJ.k8s-projected.token\n");
    let json = config(json!({"file": subject, "format": {"type": "text"}}), true);
    let fake = Fake::new();
    fake.answer(
        200,
        r#"{"access_token":"federated-token","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":3600}"#,
    );
    fake.answer(
        200,
        r#"{"accessToken":"ya29.impersonated","expireTime":"2099-01-01T00:00:00Z"}"#,
    );
    let http: Arc<dyn Transport> = fake.clone();
    let flow = ExternalAccount::from_json(&json, &http).unwrap();
    let token = flow.fetch().await.unwrap();
    assert_eq!(token.value, "Bearer ya29.impersonated");
    let seen = fake.seen();
    assert_eq!(seen[0].uri, "https://sts.googleapis.com/v1/token");
    assert_eq!(
        seen[0].header("content-type"),
        "application/x-www-form-urlencoded"
    );
    let form = seen[0].form();
    assert_eq!(
        form,
        HashMap::from([
            (
                "grant_type".to_owned(),
                "urn:ietf:params:oauth:grant-type:token-exchange".to_owned()
            ),
            ("audience".to_owned(), AUDIENCE.to_owned()),
            ("scope".to_owned(), SCOPE.to_owned()),
            (
                "requested_token_type".to_owned(),
                "urn:ietf:params:oauth:token-type:access_token".to_owned()
            ),
            (
                "subject_token".to_owned(),
                "eyJ.k8s-projected.token".to_owned()
            ),
            (
                "subject_token_type".to_owned(),
                "urn:ietf:params:oauth:token-type:jwt".to_owned()
            ),
        ])
    );
    assert!(
        seen[1]
            .uri
            .ends_with("/serviceAccounts/vertex@proj.iam.gserviceaccount.com:generateAccessToken")
    );
    assert_eq!(seen[1].header("authorization"), "Bearer federated-token");
    let body: serde_json::Value = serde_json::from_str(&seen[1].body).unwrap();
    assert_eq!(body, json!({"scope": [SCOPE], "lifetime": "1800s"}));
}

#[tokio::test]
async fn federation_without_impersonation_uses_the_sts_token_and_reads_json_urls() {
    let json = config(
        json!({
            "url": "http://127.0.0.1:9/token",
            "headers": {"Metadata": "True"},
            "format": {"type": "json", "subject_token_field_name": "access_token"}
        }),
        false,
    );
    let fake = Fake::new();
    fake.answer(200, r#"{"access_token":"oidc-from-url"}"#);
    fake.answer(
        200,
        r#"{"access_token":"federated","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":3600}"#,
    );
    let http: Arc<dyn Transport> = fake.clone();
    let flow = ExternalAccount::from_json(&json, &http).unwrap();
    assert_eq!(flow.fetch().await.unwrap().value, "Bearer federated");
    let seen = fake.seen();
    assert_eq!(seen[0].header("metadata"), "True");
    assert_eq!(seen[1].form()["subject_token"], "oidc-from-url");
    assert_eq!(seen.len(), 2);
}

#[tokio::test]
async fn federation_errors_name_the_service_not_the_tokens() {
    let subject = file("wif-secret", "the-secret-subject-token");
    let json = config(json!({"file": subject}), true);
    let fake = Fake::new();
    fake.answer(
        400,
        r#"{"error":"invalid_grant","error_description":"The audience in ID Token [x] does not match the expected audience."}"#,
    );
    let http: Arc<dyn Transport> = fake.clone();
    let flow = ExternalAccount::from_json(&json, &http).unwrap();
    let err = flow.fetch().await.unwrap_err();
    assert!(
        err.contains("Google STS") && err.contains("invalid_grant"),
        "{err}"
    );
    assert!(!err.contains("the-secret-subject-token"), "{err}");
    fake.set(
        200,
        r#"{"access_token":"federated","token_type":"Bearer","expires_in":3600}"#,
    );
    fake.answer(
        403,
        r#"{"error":{"code":403,"message":"Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).","status":"PERMISSION_DENIED"}}"#,
    );
    let err = flow.fetch().await.unwrap_err();
    assert!(
        err.contains("generateAccessToken") && err.contains("PERMISSION_DENIED"),
        "{err}"
    );
}

#[test]
fn unsupported_configurations_are_refused_by_name() {
    let http: Arc<dyn Transport> = Fake::new();
    let with = |change: &dyn Fn(&mut serde_json::Value)| {
        let mut value: serde_json::Value =
            serde_json::from_str(&config(json!({"file": "/t"}), false)).unwrap();
        change(&mut value);
        ExternalAccount::from_json(&value.to_string(), &http)
            .err()
            .unwrap()
    };
    assert!(with(&|v| v["type"] = json!("service_account")).contains("external_account"));
    assert!(with(&|v| v["credential_source"] = json!({"environment_id": "aws1"})).contains("AWS"));
    assert!(
        with(&|v| v["credential_source"] = json!({"executable": {"command": "x"}}))
            .contains("executable")
    );
    assert!(with(&|v| v["quota_project_id"] = json!("p")).contains("quota_project_id"));
    assert!(with(&|v| v["credential_source"] = json!({})).contains("exactly one"));
    assert!(
        with(&|v| v["credential_source"]["format"] = json!({"type": "json"}))
            .contains("subject_token_field_name")
    );
    let err = ExternalAccount::from_json("{\"private_key\": \"secret-material\"", &http)
        .err()
        .unwrap();
    assert!(!err.contains("secret-material"), "{err}");
}

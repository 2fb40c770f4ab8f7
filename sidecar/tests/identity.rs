//! Cloud workload identity end to end: a real sidecar, its deployments on
//! `workloadIdentity`, its environment as each cloud's webhook writes it, and mocks of
//! the identity services (AWS STS, the EKS Pod Identity agent, the GCE metadata server,
//! Google STS and IAM Credentials, Entra ID) issuing credentials the mock Bedrock,
//! Vertex AI and Azure OpenAI check. Each flow: the upstream gets the right signature or
//! bearer token; one fetch serves many calls; credentials are refreshed ahead of expiry;
//! an upstream refusal triggers one refresh and one more try, and a second refusal is
//! the client's answer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use http::StatusCode;
use llmesh_sidecar::config::snapshot::*;
use llmesh_tests::identity::aws::Standing;
use llmesh_tests::identity::aws::{ROLE_ARN, service_account_token};
use llmesh_tests::identity::entra::{CLIENT_ID, TENANT_ID};
use llmesh_tests::identity::{Keyring, Tokens};
use llmesh_tests::openai::OpenAi;
use llmesh_tests::{
    Mock, MockBedrock, MockEntra, MockGemini, MockGoogleSts, MockMetadata, MockPodIdentity, MockSts,
};
use support::*;

const CLAUDE: &str = "anthropic.claude-3-haiku-20240307-v1:0";

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A projected-token file only this test writes.
fn token_file(test: &str, token: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("identity-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("token");
    std::fs::write(&path, token).unwrap();
    path
}

fn sa_token(audience: &str) -> String {
    service_account_token(
        "system:serviceaccount:team:app",
        audience,
        Duration::from_secs(3600),
    )
}

fn bedrock(mock: &MockBedrock, identity: WorkloadIdentity) -> DeploymentSpec {
    let mut d = DeploymentSpec::new("bedrock", ProviderKind::Bedrock, CLAUDE);
    d.base_url = Some(mock.base_url());
    d.region = Some(mock.region().into());
    d.workload_identity = Some(identity);
    d
}

fn vertex(mock: &MockGemini, identity: WorkloadIdentity) -> DeploymentSpec {
    let mut d = DeploymentSpec::new("vertex", ProviderKind::Vertex, "gemini-2.5-flash");
    d.base_url = Some(mock.vertex_base());
    d.region = Some("us-central1".into());
    d.workload_identity = Some(identity);
    d
}

fn azure(mock: &Mock<OpenAi>) -> DeploymentSpec {
    let mut d = DeploymentSpec::new("azure", ProviderKind::Azure, "gpt4o-prod");
    d.base_url = Some(format!("http://{}", mock.addr()));
    d.workload_identity = Some(WorkloadIdentity::AzureWorkloadIdentity);
    d
}

async fn serve(d: DeploymentSpec, env: HashMap<String, String>) -> Running {
    Running::start_with_env(Some(snapshot("v1", vec![model("chat", vec![d])])), env).await
}

async fn ok(sidecar: &Running) {
    let (status, _, body) = post(sidecar.api, "/v1/chat/completions", chat("chat")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// The access key id a SigV4 `Authorization` names.
fn signed_by(auth: &str) -> &str {
    auth.split("Credential=")
        .nth(1)
        .and_then(|c| c.split('/').next())
        .unwrap_or("")
}

fn irsa_env(sts: &MockSts, file: &std::path::Path) -> HashMap<String, String> {
    env(&[
        ("AWS_ROLE_ARN", ROLE_ARN),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", file.to_str().unwrap()),
        ("AWS_ENDPOINT_URL_STS", &sts.base_url()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_STS_REGIONAL_ENDPOINTS", "regional"),
    ])
}

#[tokio::test]
async fn irsa_assumes_the_role_once_and_signs_with_the_session() {
    let upstream = MockBedrock::start().await;
    let sts = MockSts::start_for(upstream.keyring()).await;
    let token = sa_token("sts.amazonaws.com");
    sts.expect_token(&token);
    let file = token_file("irsa", &format!("{token}\n"));
    let sidecar = serve(
        bedrock(&upstream, WorkloadIdentity::AwsWebIdentity),
        irsa_env(&sts, &file),
    )
    .await;
    // Concurrent first calls share one exchange.
    let calls: Vec<_> = (0..5)
        .map(|_| post(sidecar.api, "/v1/chat/completions", chat("chat")))
        .collect();
    for (status, _, body) in futures_util::future::join_all(calls).await {
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    ok(&sidecar).await;
    let calls = sts.calls();
    assert_eq!(
        calls.len(),
        1,
        "one AssumeRoleWithWebIdentity for six calls"
    );
    assert_eq!(calls[0]["Action"], "AssumeRoleWithWebIdentity");
    assert_eq!(calls[0]["RoleArn"], ROLE_ARN);
    assert_eq!(calls[0]["WebIdentityToken"], token);
    assert!(calls[0]["RoleSessionName"].starts_with("llmesh-"));
    let sent = upstream.requests();
    assert_eq!(sent.len(), 6);
    let Standing::Valid(issued) = upstream.keyring().standing("ASIAMOCKTEMP00000001") else {
        panic!("the session STS issued is not in the keyring")
    };
    for request in &sent {
        assert_eq!(
            signed_by(request.header("authorization").unwrap()),
            issued.access_key_id
        );
        assert_eq!(
            request.header("x-amz-security-token"),
            issued.session_token.as_deref()
        );
    }
}

#[tokio::test]
async fn an_expired_aws_session_is_refreshed_once_and_the_call_sent_again() {
    let upstream = MockBedrock::start().await;
    let sts = MockSts::start_for(upstream.keyring()).await;
    let file = token_file("irsa-expired", &sa_token("sts.amazonaws.com"));
    let sidecar = serve(
        bedrock(&upstream, WorkloadIdentity::AwsWebIdentity),
        irsa_env(&sts, &file),
    )
    .await;
    ok(&sidecar).await;
    // AWS ended the session early (the role's session was revoked, the clock moved).
    upstream.keyring().expire_all();
    let (status, headers, body) = post(sidecar.api, "/v1/chat/completions", chat("chat")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        header(&headers, "x-llmesh-attempts"),
        "1",
        "not counted as a retry"
    );
    assert_eq!(sts.calls().len(), 2);
    let sent = upstream.requests();
    let keys: Vec<&str> = sent
        .iter()
        .map(|r| signed_by(r.header("authorization").unwrap()))
        .collect();
    assert_eq!(
        keys,
        [
            "ASIAMOCKTEMP00000001",
            "ASIAMOCKTEMP00000001",
            "ASIAMOCKTEMP00000002"
        ]
    );
    ok(&sidecar).await;
    assert_eq!(sts.calls().len(), 2, "the fresh session is cached");
}

#[tokio::test]
async fn a_session_refused_again_after_its_refresh_is_the_clients_403() {
    let upstream = MockBedrock::start().await;
    // STS issues sessions Bedrock never heard of.
    let elsewhere = Keyring::default();
    let sts = MockSts::start_for(&elsewhere).await;
    let file = token_file("irsa-refused", &sa_token("sts.amazonaws.com"));
    let sidecar = serve(
        bedrock(&upstream, WorkloadIdentity::AwsWebIdentity),
        irsa_env(&sts, &file),
    )
    .await;
    let (status, _, body) = post(sidecar.api, "/v1/chat/completions", chat("chat")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["type"], "permission_error");
    assert_eq!(
        body["error"]["message"],
        "The security token included in the request is invalid."
    );
    assert_eq!(sts.calls().len(), 2, "one refresh");
    assert_eq!(upstream.requests().len(), 2, "one more try");
}

#[tokio::test]
async fn pod_identity_reads_the_token_file_anew_and_refreshes_before_expiry() {
    let upstream = MockBedrock::start().await;
    let agent = MockPodIdentity::start_for(upstream.keyring()).await;
    // Keys that live 4 s are refreshed at half their life.
    agent.set_lifetime(Duration::from_secs(4));
    let first = sa_token("pods.eks.amazonaws.com");
    let file = token_file("pod-identity", &first);
    let pairs = env(&[
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &agent.full_uri()),
        (
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            file.to_str().unwrap(),
        ),
    ]);
    let sidecar = serve(bedrock(&upstream, WorkloadIdentity::AwsPodIdentity), pairs).await;
    ok(&sidecar).await;
    ok(&sidecar).await;
    assert_eq!(agent.request_count(), 1);
    // kubelet rotates the projected token.
    let second = service_account_token(
        "system:serviceaccount:team:app",
        "pods.eks.amazonaws.com",
        Duration::from_secs(7200),
    );
    std::fs::write(&file, &second).unwrap();
    tokio::time::sleep(Duration::from_millis(2300)).await;
    ok(&sidecar).await;
    assert_eq!(agent.tokens_seen(), [first, second]);
    let last = upstream.requests().pop().unwrap();
    assert_eq!(
        signed_by(last.header("authorization").unwrap()),
        "ASIAMOCKTEMP00000002"
    );
}

#[tokio::test]
async fn gke_metadata_gives_vertex_its_token_and_project() {
    let upstream = MockGemini::start().await;
    let metadata = MockMetadata::start_for(&upstream.tokens(), "mock-project").await;
    let pairs = env(&[("GCE_METADATA_HOST", &metadata.host())]);
    let sidecar = serve(vertex(&upstream, WorkloadIdentity::GcpMetadata), pairs).await;
    ok(&sidecar).await;
    ok(&sidecar).await;
    ok(&sidecar).await;
    assert_eq!(metadata.token_requests(), 1);
    assert_eq!(metadata.request_count(), 2, "and one ask for the project");
    for request in upstream.model_requests() {
        assert_eq!(
            request.header("authorization"),
            Some("Bearer ya29.c.metadata-0001")
        );
        assert!(
            request
                .path
                .contains("/projects/mock-project/locations/us-central1/")
        );
    }
    // Vertex refuses the token (401): one refresh, one more try.
    upstream.revoke_tokens();
    let (status, headers, body) = post(sidecar.api, "/v1/chat/completions", chat("chat")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(header(&headers, "x-llmesh-attempts"), "1");
    assert_eq!(metadata.token_requests(), 2);
    let last = upstream.model_requests().pop().unwrap();
    assert_eq!(
        last.header("authorization"),
        Some("Bearer ya29.c.metadata-0002")
    );
}

#[tokio::test]
async fn a_token_vertex_refuses_twice_is_the_clients_401() {
    let upstream = MockGemini::start().await;
    // A metadata server whose tokens Vertex does not know (another project's node pool).
    let metadata = MockMetadata::start_for(&Tokens::default(), "mock-project").await;
    let pairs = env(&[("GCE_METADATA_HOST", &metadata.host())]);
    let mut d = vertex(&upstream, WorkloadIdentity::GcpMetadata);
    d.project = Some("mock-project".into());
    let sidecar = serve(d, pairs).await;
    let (status, _, body) = post(sidecar.api, "/v1/chat/completions", chat("chat")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["type"], "authentication_error");
    assert_eq!(metadata.token_requests(), 2, "one refresh");
    assert_eq!(
        metadata.request_count(),
        2,
        "the project was given, not asked"
    );
    assert_eq!(upstream.model_requests().len(), 2);
}

#[tokio::test]
async fn federation_exchanges_the_projected_token_then_impersonates() {
    let upstream = MockGemini::start().await;
    let google = MockGoogleSts::start_for(&upstream.tokens()).await;
    let token = sa_token(
        "//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/llmesh-pool/providers/kubernetes",
    );
    google.expect_subject(&token);
    let file = token_file("wif", &token);
    let mut d = vertex(&upstream, WorkloadIdentity::GcpExternalAccount);
    d.project = Some("mock-project".into());
    // The credential configuration comes from the deployment's Secret.
    d.gcp_service_account = Some(SecretString::new(
        google.credential_config(file.to_str().unwrap(), true),
    ));
    let sidecar = serve(d, HashMap::new()).await;
    ok(&sidecar).await;
    ok(&sidecar).await;
    let exchanges = google.exchanges();
    assert_eq!(exchanges.len(), 1);
    assert_eq!(exchanges[0]["subject_token"], token);
    assert_eq!(
        exchanges[0]["grant_type"],
        "urn:ietf:params:oauth:grant-type:token-exchange"
    );
    let impersonations = google.impersonations();
    assert_eq!(impersonations.len(), 1);
    assert_eq!(
        impersonations[0].header("authorization"),
        Some("Bearer ya29.d.federated-0001")
    );
    assert_eq!(impersonations[0].json()["lifetime"], "3600s");
    for request in upstream.model_requests() {
        assert_eq!(
            request.header("authorization"),
            Some("Bearer ya29.c.impersonated-0002")
        );
    }
    upstream.revoke_tokens();
    ok(&sidecar).await;
    assert_eq!(google.exchanges().len(), 2);
    assert_eq!(google.impersonations().len(), 2);
}

#[tokio::test]
async fn federation_reads_google_application_credentials_without_impersonation() {
    let upstream = MockGemini::start().await;
    let google = MockGoogleSts::start_for(&upstream.tokens()).await;
    let file = token_file("wif-env", &sa_token("pool"));
    let config = file.with_file_name("credential-configuration.json");
    std::fs::write(
        &config,
        google.credential_config(file.to_str().unwrap(), false),
    )
    .unwrap();
    let mut d = vertex(&upstream, WorkloadIdentity::GcpExternalAccount);
    d.project = Some("mock-project".into());
    let pairs = env(&[("GOOGLE_APPLICATION_CREDENTIALS", config.to_str().unwrap())]);
    let sidecar = serve(d, pairs).await;
    ok(&sidecar).await;
    assert!(google.impersonations().is_empty());
    let sent = upstream.model_requests();
    assert_eq!(
        sent[0].header("authorization"),
        Some("Bearer ya29.d.federated-0001")
    );
}

fn entra_env(entra: &MockEntra, file: &std::path::Path) -> HashMap<String, String> {
    env(&[
        ("AZURE_CLIENT_ID", CLIENT_ID),
        ("AZURE_TENANT_ID", TENANT_ID),
        ("AZURE_FEDERATED_TOKEN_FILE", file.to_str().unwrap()),
        ("AZURE_AUTHORITY_HOST", &entra.authority_host()),
    ])
}

#[tokio::test]
async fn entra_tokens_replace_the_azure_api_key() {
    let tokens = Tokens::default();
    let upstream = Mock::start_with(OpenAi::with_entra(&tokens)).await;
    let entra = MockEntra::start_for(&tokens).await;
    let token = sa_token("api://AzureADTokenExchange");
    entra.expect_assertion(&token);
    let file = token_file("entra", &token);
    let sidecar = serve(azure(&upstream), entra_env(&entra, &file)).await;
    ok(&sidecar).await;
    ok(&sidecar).await;
    let grants = entra.grants();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0]["client_assertion"], token);
    assert_eq!(
        grants[0]["scope"],
        "https://cognitiveservices.azure.com/.default"
    );
    for request in upstream.requests() {
        let auth = request.header("authorization").unwrap();
        assert!(
            auth.starts_with("Bearer eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.mock-entra-0001"),
            "{auth}"
        );
        assert!(request.header("api-key").is_none());
    }
    tokens.revoke_all();
    ok(&sidecar).await;
    assert_eq!(entra.grants().len(), 2);
}

#[tokio::test]
async fn entra_refreshes_ahead_of_expiry_and_a_second_401_fails_cleanly() {
    let tokens = Tokens::default();
    let upstream = Mock::start_with(OpenAi::with_entra(&tokens)).await;
    let entra = MockEntra::start_for(&tokens).await;
    entra.set_lifetime(Duration::from_secs(2));
    let file = token_file("entra-refresh", &sa_token("api://AzureADTokenExchange"));
    let sidecar = serve(azure(&upstream), entra_env(&entra, &file)).await;
    ok(&sidecar).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    ok(&sidecar).await;
    assert_eq!(entra.grants().len(), 2, "refreshed at half its life");

    // Entra issues tokens Azure OpenAI refuses (they are for another resource).
    let upstream = Mock::start_with(OpenAi::with_entra(&Tokens::default())).await;
    let refusing = MockEntra::start_for(&Tokens::default()).await;
    let file = token_file("entra-refused", &sa_token("api://AzureADTokenExchange"));
    let sidecar = serve(azure(&upstream), entra_env(&refusing, &file)).await;
    let (status, _, body) = post(sidecar.api, "/v1/chat/completions", chat("chat")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["type"], "authentication_error");
    assert_eq!(refusing.grants().len(), 2);
}

#[tokio::test]
async fn a_pod_without_the_identity_serves_the_rest_and_says_what_is_missing() {
    let upstream = MockBedrock::start().await;
    let echo = DeploymentSpec::new("demo", ProviderKind::Demo, "echo");
    let snapshot = snapshot(
        "v1",
        vec![
            model(
                "chat",
                vec![bedrock(&upstream, WorkloadIdentity::AwsWebIdentity)],
            ),
            model("echo", vec![echo]),
        ],
    );
    let sidecar = Running::start_with_env(Some(snapshot), HashMap::new()).await;
    let (status, _, _) = post(sidecar.api, "/v1/chat/completions", chat("echo")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = post(sidecar.api, "/v1/chat/completions", chat("chat")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE not set"),
        "{message}"
    );
    assert!(upstream.requests().is_empty());
}

/// The built binary reads the identity from its own environment, as the injected
/// sidecar (and `llmesh-local`) do: nothing but the variables the webhook writes.
#[tokio::test]
async fn the_sidecar_process_reads_the_webhooks_variables() {
    use std::process::{Command, Stdio};

    let free = free_port;

    let tokens = Tokens::default();
    let upstream = Mock::start_with(OpenAi::with_entra(&tokens)).await;
    let entra = MockEntra::start_for(&tokens).await;
    let token = sa_token("api://AzureADTokenExchange");
    entra.expect_assertion(&token);
    let file = token_file("process", &token);
    let config = file.with_file_name("snapshot.json");
    let snap = snapshot("v1", vec![model("chat", vec![azure(&upstream)])]);
    std::fs::write(&config, serde_json::to_vec(&*snap).unwrap()).unwrap();
    let (api, admin) = (free(), free());
    let mut command = Command::new(env!("CARGO_BIN_EXE_llmesh-sidecar"));
    command
        .args([
            "--config",
            config.to_str().unwrap(),
            "--listen",
            &api.to_string(),
        ])
        .args(["--admin-listen", &admin.to_string()])
        .envs(entra_env(&entra, &file))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _child = Proc(command.spawn().unwrap());
    let mut ready = false;
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(admin).await.is_ok()
            && get(admin, "/readyz").await.0 == StatusCode::OK
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ready, "the sidecar never became ready");
    let (status, _, body) = post(api, "/v1/chat/completions", chat("chat")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(entra.grants().len(), 1);
    let sent = upstream.requests();
    assert!(
        sent[0]
            .header("authorization")
            .unwrap()
            .starts_with("Bearer eyJ")
    );
}

/// A metadata server that never names the project leaves only that deployment out of
/// service, saying why; the rest of the namespace's config serves.
#[tokio::test]
async fn an_unknown_project_fails_only_its_deployment() {
    let upstream = MockGemini::start().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = closed.local_addr().unwrap().to_string();
    drop(closed);
    let snapshot = snapshot(
        "v1",
        vec![
            model(
                "chat",
                vec![vertex(&upstream, WorkloadIdentity::GcpMetadata)],
            ),
            model(
                "echo",
                vec![DeploymentSpec::new("demo", ProviderKind::Demo, "echo")],
            ),
        ],
    );
    let sidecar = Running::start_with_env(None, env(&[("GCE_METADATA_HOST", &host)])).await;
    sidecar.config.send_replace(Some(snapshot));
    // The metadata server is asked a few times over some seconds first.
    let mut ready = false;
    for _ in 0..300 {
        if get(sidecar.admin, "/readyz").await.0 == StatusCode::OK {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the config never applied");
    let (status, _, _) = post(sidecar.api, "/v1/chat/completions", chat("echo")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = post(sidecar.api, "/v1/chat/completions", chat("chat")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("project unknown") && message.contains("cannot learn the project"),
        "{message}"
    );
    assert!(upstream.model_requests().is_empty());
}

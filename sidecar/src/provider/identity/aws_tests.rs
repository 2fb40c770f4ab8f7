use std::collections::HashMap;
use std::time::Duration;

use super::*;
use crate::provider::identity::cache::Cached;
use crate::provider::identity::fake::Fake;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn token_file(name: &str, contents: &str) -> String {
    let dir = std::env::temp_dir().join(format!("llmesh-aws-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.to_str().unwrap().to_owned()
}

/// A time an hour from now, as STS writes it.
fn in_an_hour() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let days = (secs / 86_400) as i64;
    let (mut y, mut doy) = (1970i64, days);
    loop {
        let len = if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 {
            366
        } else {
            365
        };
        if doy < len {
            break;
        }
        doy -= len;
        y += 1;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let months = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let mut m = 0;
    while doy >= months[m] {
        doy -= months[m];
        m += 1;
    }
    let rem = secs % 86_400;
    format!(
        "{y:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        m + 1,
        doy + 1,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn sts_answer(expiration: &str) -> String {
    format!(
        r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:team:app</SubjectFromWebIdentityToken>
    <Audience>sts.amazonaws.com</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/bedrock-caller/llmesh</Arn>
      <AssumedRoleId>AROACLKWSDQRAOEXAMPLE:llmesh</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>FwoGZXIvYXdzE+session&amp;token</SessionToken>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
      <Expiration>{expiration}</Expiration>
      <AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId>
    </Credentials>
    <Provider>arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata>
    <RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId>
  </ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"#
    )
}

fn irsa_env(file: &str) -> HashMap<String, String> {
    env(&[
        (
            "AWS_ROLE_ARN",
            "arn:aws:iam::123456789012:role/bedrock-caller",
        ),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", file),
        ("AWS_ROLE_SESSION_NAME", "llmesh-test"),
        ("AWS_REGION", "eu-west-1"),
    ])
}

#[tokio::test]
async fn web_identity_posts_the_query_form_and_reads_the_xml() {
    let file = token_file("irsa", "eyJhbGciOiJSUzI1NiJ9.projected.sig\n");
    let fake = Fake::new();
    fake.answer(200, sts_answer(&in_an_hour()));
    let http: Arc<dyn Transport> = fake.clone();
    let flow = WebIdentity::from_env(&irsa_env(&file), "us-east-1", &http).unwrap();
    let fetched = flow.fetch().await.unwrap();
    assert_eq!(fetched.value.access_key_id(), "ASIAIOSFODNN7EXAMPLE");
    let lifetime = fetched.lifetime.as_secs();
    assert!((3590..=3600).contains(&lifetime), "{lifetime}");
    let seen = &fake.seen()[0];
    assert_eq!(seen.method, Method::POST);
    assert_eq!(seen.uri, "https://sts.eu-west-1.amazonaws.com/");
    assert_eq!(
        seen.header("content-type"),
        "application/x-www-form-urlencoded; charset=utf-8"
    );
    assert!(seen.headers.get("authorization").is_none(), "unsigned");
    let form = seen.form();
    assert_eq!(form["Action"], "AssumeRoleWithWebIdentity");
    assert_eq!(form["Version"], "2011-06-15");
    assert_eq!(
        form["RoleArn"],
        "arn:aws:iam::123456789012:role/bedrock-caller"
    );
    assert_eq!(form["RoleSessionName"], "llmesh-test");
    assert_eq!(
        form["WebIdentityToken"],
        "eyJhbGciOiJSUzI1NiJ9.projected.sig"
    );
    assert_eq!(form.len(), 5);
}

#[tokio::test]
async fn web_identity_reports_the_sts_error_without_the_token() {
    let file = token_file("irsa-err", "secret-web-identity-token");
    let fake = Fake::new();
    fake.answer_with(
        400,
        vec![("content-type", "text/xml".into())],
        r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error>
    <Type>Sender</Type>
    <Code>InvalidIdentityToken</Code>
    <Message>No OpenIDConnect provider found in your account for https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE</Message>
  </Error>
  <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>
</ErrorResponse>"#,
    );
    let http: Arc<dyn Transport> = fake.clone();
    let flow = WebIdentity::from_env(&irsa_env(&file), "us-east-1", &http).unwrap();
    let err = flow.fetch().await.unwrap_err();
    assert!(
        err.contains("400 Bad Request (InvalidIdentityToken: No OpenIDConnect provider found"),
        "{err}"
    );
    assert!(!err.contains("secret-web-identity-token"), "{err}");
    fake.set(200, "<AssumeRoleWithWebIdentityResponse/>");
    let err = flow.fetch().await.unwrap_err();
    assert!(err.contains("no Credentials"), "{err}");
}

#[tokio::test]
async fn expired_or_partial_sts_credentials_are_refused() {
    let file = token_file("irsa-old", "t");
    let fake = Fake::new();
    fake.answer(200, sts_answer("2014-10-24T23:00:23Z"));
    let http: Arc<dyn Transport> = fake.clone();
    let flow = WebIdentity::from_env(&irsa_env(&file), "us-east-1", &http).unwrap();
    let cached = Cached::new(flow);
    let err = cached.lease().await.unwrap_err().to_string();
    assert!(err.contains("already expired"), "{err}");
    let partial = sts_answer("2099-01-01T00:00:00Z")
        .replace("<AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId>", "");
    let fields = xml::children(&partial, &RESULT).unwrap().unwrap();
    let err = keys(&fields, "SessionToken", "STS").unwrap_err();
    assert!(err.contains("no AccessKeyId"), "{err}");
}

#[test]
fn sts_endpoints_are_found_as_the_sdks_find_them() {
    let at = |pairs: &[(&str, &str)], region: &str| {
        sts_endpoint(&env(pairs), region).unwrap().to_string()
    };
    assert_eq!(at(&[], "us-east-1"), "https://sts.us-east-1.amazonaws.com/");
    assert_eq!(
        at(&[("AWS_REGION", "eu-west-3")], "us-east-1"),
        "https://sts.eu-west-3.amazonaws.com/"
    );
    assert_eq!(
        at(&[("AWS_DEFAULT_REGION", "ap-south-1")], "us-east-1"),
        "https://sts.ap-south-1.amazonaws.com/"
    );
    assert_eq!(
        at(&[("AWS_STS_REGIONAL_ENDPOINTS", "legacy")], "us-east-1"),
        "https://sts.amazonaws.com/"
    );
    assert_eq!(
        at(&[("AWS_STS_REGIONAL_ENDPOINTS", "legacy")], "af-south-1"),
        "https://sts.af-south-1.amazonaws.com/"
    );
    assert_eq!(
        at(&[], "cn-north-1"),
        "https://sts.cn-north-1.amazonaws.com.cn/"
    );
    assert_eq!(
        at(
            &[("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9/")],
            "us-east-1"
        ),
        "http://127.0.0.1:9/"
    );
    assert!(sts_endpoint(&env(&[("AWS_REGION", "us-east-1.evil.com/")]), "x").is_err());
}

#[test]
fn missing_or_bad_variables_say_what_to_do() {
    let http: Arc<dyn Transport> = Fake::new();
    let err = WebIdentity::from_env(&env(&[]), "us-east-1", &http)
        .err()
        .unwrap();
    assert!(
        err.contains("AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE not set")
            && err.contains("eks.amazonaws.com/role-arn"),
        "{err}"
    );
    let mut bad = irsa_env("/t");
    bad.insert("AWS_ROLE_SESSION_NAME".into(), "has space".into());
    assert!(WebIdentity::from_env(&bad, "us-east-1", &http).is_err());
    let err = PodIdentity::from_env(&env(&[]), &http).err().unwrap();
    assert!(err.contains("create-pod-identity-association"), "{err}");
    let remote = env(&[
        (
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "http://evil.example/creds",
        ),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "/t"),
    ]);
    let err = PodIdentity::from_env(&remote, &http).err().unwrap();
    assert!(err.contains("plain http"), "{err}");
    for ok in [
        "127.0.0.1:80",
        "169.254.170.23",
        "[fd00:ec2::23]",
        "localhost:1",
        "[::1]:2",
    ] {
        let uri = format!("http://{ok}/v1/credentials");
        let pairs = env(&[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &uri),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "/t"),
        ]);
        assert!(PodIdentity::from_env(&pairs, &http).is_ok(), "{ok}");
    }
    let https = env(&[
        (
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "https://agent.example/creds",
        ),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "tok"),
    ]);
    assert!(PodIdentity::from_env(&https, &http).is_ok());
}

#[tokio::test]
async fn pod_identity_sends_the_file_token_read_anew_and_reads_the_json() {
    let file = token_file("eks-pod-identity-token", "first-token\n");
    let fake = Fake::new();
    let answer = serde_json::json!({
        "AccessKeyId": "ASIAPODIDENTITY00001",
        "SecretAccessKey": "pod/secret",
        "Token": "pod-session-token",
        "AccountId": "123456789012",
        "Expiration": in_an_hour(),
    });
    fake.answer(200, answer.to_string());
    let http: Arc<dyn Transport> = fake.clone();
    let pairs = env(&[
        (
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "http://169.254.170.23/v1/credentials",
        ),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &file),
    ]);
    let flow = PodIdentity::from_env(&pairs, &http).unwrap();
    let fetched = flow.fetch().await.unwrap();
    assert_eq!(fetched.value.access_key_id(), "ASIAPODIDENTITY00001");
    assert!(fetched.lifetime > Duration::from_secs(3500));
    std::fs::write(&file, "rotated-token").unwrap();
    flow.fetch().await.unwrap();
    let seen = fake.seen();
    assert_eq!(seen[0].method, Method::GET);
    assert_eq!(seen[0].uri, "http://169.254.170.23/v1/credentials");
    assert_eq!(seen[0].header("authorization"), "first-token");
    assert!(seen[0].headers["authorization"].is_sensitive());
    assert_eq!(seen[1].header("authorization"), "rotated-token");
    fake.set(400, "Service account token cannot be empty\n");
    let err = flow.fetch().await.unwrap_err();
    assert!(
        err.contains("400 Bad Request (Service account token cannot be empty)"),
        "{err}"
    );
}

#[test]
fn config_reloads_share_one_source_per_role() {
    let http: Arc<dyn Transport> = Fake::new();
    let mut pairs = irsa_env("/t");
    pairs.remove("AWS_ROLE_SESSION_NAME");
    let ctx = ProviderContext::with_env(http, Arc::new(pairs));
    let a = source(WorkloadIdentity::AwsWebIdentity, "us-east-1", &ctx).unwrap();
    let b = source(WorkloadIdentity::AwsWebIdentity, "us-east-1", &ctx).unwrap();
    assert!(
        Arc::ptr_eq(&a, &b),
        "a generated session name does not split the cache"
    );
    assert!(source(WorkloadIdentity::GcpMetadata, "us-east-1", &ctx).is_err());
}

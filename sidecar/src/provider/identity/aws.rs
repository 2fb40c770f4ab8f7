//! AWS credentials for Bedrock without static keys: temporary keys from the pod's
//! IAM role, refreshed before they expire and signed into each request (SigV4 with
//! `x-amz-security-token`).
//!
//! **IRSA** (`aws-web-identity`). EKS's pod-identity webhook injects
//! `AWS_ROLE_ARN`, `AWS_WEB_IDENTITY_TOKEN_FILE` (a projected ServiceAccount token,
//! audience `sts.amazonaws.com`) and usually `AWS_REGION` and
//! `AWS_STS_REGIONAL_ENDPOINTS=regional`. Each fetch reads the token file anew and
//! POSTs the query API's form, unsigned, to STS:
//! `Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=…&RoleSessionName=…&WebIdentityToken=…`.
//! The answer is XML, `AssumeRoleWithWebIdentityResponse/AssumeRoleWithWebIdentityResult/
//! Credentials/{AccessKeyId,SecretAccessKey,SessionToken,Expiration}`; a refusal is
//! `ErrorResponse/Error/{Type,Code,Message}`. The session name is
//! `AWS_ROLE_SESSION_NAME`, else `llmesh-<unix ms>` chosen once per source. The STS
//! endpoint is found as the AWS SDKs find it: `AWS_ENDPOINT_URL_STS` if set; else the
//! regional endpoint `https://sts.{region}.amazonaws.com` (`.amazonaws.com.cn` in China)
//! for `AWS_REGION`, `AWS_DEFAULT_REGION` or the deployment's region; with
//! `AWS_STS_REGIONAL_ENDPOINTS=legacy`, the global `https://sts.amazonaws.com` for the
//! regions that used it.
//!
//! **EKS Pod Identity** (`aws-pod-identity`). The webhook injects
//! `AWS_CONTAINER_CREDENTIALS_FULL_URI` (`http://169.254.170.23/v1/credentials`, the
//! node's agent) and `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`. Each fetch reads the token
//! file anew and sends it as `Authorization` in a `GET` of the URI; the answer is JSON,
//! `{"AccessKeyId", "SecretAccessKey", "Token", "AccountId", "Expiration"}`. As the SDKs
//! do, a plain-http URI must name a loopback address or the ECS/EKS agents'
//! (`169.254.170.2`, `169.254.170.23`, `fd00:ec2::23`), so the token never leaves the
//! node.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use http::{Method, Uri};
use serde::Deserialize;

use super::cache::{Fetch, Fetched};
use super::net::{
    exchange, form, http_url, lifetime_until, read_token_file, request, unix_seconds,
};
use super::{Env, Source, first, required, shared, unavailable, xml};
use crate::config::snapshot::WorkloadIdentity;
use crate::provider::bedrock::sigv4::Keys;
use crate::provider::{BuildError, ProviderContext, secret_header};
use crate::upstream::Transport;

/// The STS API version of the query API.
const STS_VERSION: &str = "2011-06-15";
/// Where the AWS answer's credentials are.
const RESULT: [&str; 3] = [
    "AssumeRoleWithWebIdentityResponse",
    "AssumeRoleWithWebIdentityResult",
    "Credentials",
];
/// Regions whose legacy STS endpoint was the global one
/// (`AWS_STS_REGIONAL_ENDPOINTS=legacy`).
const LEGACY_GLOBAL: &[&str] = &[
    "ap-northeast-1",
    "ap-south-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "aws-global",
    "ca-central-1",
    "eu-central-1",
    "eu-north-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
];

/// The keys source of a Bedrock deployment with `identity`, shared with other
/// deployments using the same role. A pod without the identity's variables gets a
/// source that fails with the reason (logged), not an error: other pods of the
/// namespace may have it.
pub fn source(
    identity: WorkloadIdentity,
    region: &str,
    ctx: &ProviderContext,
) -> Result<Arc<dyn Source<Arc<Keys>>>, BuildError> {
    let made = match identity {
        WorkloadIdentity::AwsWebIdentity => WebIdentity::from_env(&*ctx.env, region, &ctx.http)
            .map(|f| shared(&ctx.aws, f.key(), f)),
        WorkloadIdentity::AwsPodIdentity => {
            PodIdentity::from_env(&*ctx.env, &ctx.http).map(|f| shared(&ctx.aws, f.key(), f))
        }
        other => {
            return Err(BuildError::Invalid(format!(
                "workloadIdentity {} does not apply to bedrock (aws-web-identity and \
                 aws-pod-identity do)",
                other.as_str()
            )));
        }
    };
    Ok(made.unwrap_or_else(unavailable))
}

/// IRSA: a web-identity token exchanged at STS.
pub struct WebIdentity {
    http: Arc<dyn Transport>,
    sts: Uri,
    role_arn: String,
    token_file: String,
    session_name: String,
    /// Whether `session_name` is `AWS_ROLE_SESSION_NAME`'s (else generated).
    named: bool,
}

impl WebIdentity {
    /// The flow as the environment describes it.
    pub fn from_env(
        env: &dyn Env,
        region: &str,
        http: &Arc<dyn Transport>,
    ) -> Result<Self, String> {
        let [role_arn, token_file] = required(
            env,
            "aws-web-identity",
            ["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"],
            "annotate the pod's ServiceAccount with eks.amazonaws.com/role-arn",
        )?;
        if !role_arn.starts_with("arn:") {
            return Err(format!("AWS_ROLE_ARN {role_arn:?} is not a role ARN"));
        }
        let named = env.var("AWS_ROLE_SESSION_NAME");
        let session_name = match named.clone() {
            Some(name) => name,
            None => {
                let ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis());
                format!("llmesh-{ms}")
            }
        };
        // STS's pattern for RoleSessionName: [\w+=,.@-]{2,64}.
        if !(2..=64).contains(&session_name.len())
            || !session_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b))
        {
            return Err(format!(
                "AWS_ROLE_SESSION_NAME {session_name:?} is not a role session name (2 to 64 \
                 letters, digits and _+=,.@-)"
            ));
        }
        Ok(WebIdentity {
            http: Arc::clone(http),
            sts: sts_endpoint(env, region)?,
            role_arn,
            token_file,
            session_name,
            named: named.is_some(),
        })
    }

    fn key(&self) -> String {
        // A generated session name differs per build: it must not keep a reload from
        // finding the cached keys.
        let session = if self.named {
            self.session_name.as_str()
        } else {
            ""
        };
        format!(
            "aws-web-identity|{}|{}|{}|{session}",
            self.role_arn, self.token_file, self.sts
        )
    }
}

impl Fetch for WebIdentity {
    type Value = Arc<Keys>;

    async fn fetch(&self) -> Result<Fetched<Arc<Keys>>, String> {
        let token = read_token_file(&self.token_file).await?;
        let body = form(&[
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", STS_VERSION),
            ("RoleArn", &self.role_arn),
            ("RoleSessionName", &self.session_name),
            ("WebIdentityToken", &token),
        ]);
        let sent = request(Method::POST, &self.sts, Some((FORM_UTF8, body)));
        let answer = exchange(&*self.http, sent).await?;
        let text = std::str::from_utf8(&answer.body)
            .map_err(|_| format!("STS ({}) answered something that is not text", self.sts))?;
        if !answer.status.is_success() {
            let detail = xml::children(text, &["ErrorResponse", "Error"])
                .ok()
                .flatten()
                .map(|e| {
                    let field = |name: &str| e.get(name).map_or("", String::as_str).to_owned();
                    format!("{}: {}", field("Code"), clip(&field("Message")))
                })
                .unwrap_or_else(|| "no STS error body".to_owned());
            return Err(format!(
                "STS AssumeRoleWithWebIdentity ({}) answered {} ({detail})",
                self.sts, answer.status
            ));
        }
        let credentials = xml::children(text, &RESULT)
            .map_err(|e| format!("the STS answer is not XML: {e}"))?
            .ok_or("the STS answer has no Credentials")?;
        keys(&credentials, "SessionToken", "STS")
    }

    fn describe(&self) -> String {
        format!("AWS credentials for role {} (IRSA)", self.role_arn)
    }
}

/// What the SDKs send the query API.
const FORM_UTF8: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// EKS Pod Identity: the node agent's credentials endpoint.
pub struct PodIdentity {
    http: Arc<dyn Transport>,
    uri: Uri,
    token: AgentToken,
}

/// How the agent's `Authorization` is found.
enum AgentToken {
    /// Read anew from this file on every fetch.
    File(String),
    /// Given in `AWS_CONTAINER_AUTHORIZATION_TOKEN`.
    Value(HeaderValue),
}

impl PodIdentity {
    /// The flow as the environment describes it.
    pub fn from_env(env: &dyn Env, http: &Arc<dyn Transport>) -> Result<Self, String> {
        let [full] = required(
            env,
            "aws-pod-identity",
            ["AWS_CONTAINER_CREDENTIALS_FULL_URI"],
            "associate the pod's ServiceAccount with a role (aws eks \
             create-pod-identity-association) and install the eks-pod-identity-agent add-on",
        )?;
        let uri = http_url(&full, "AWS_CONTAINER_CREDENTIALS_FULL_URI")?;
        if uri.scheme_str() == Some("http") && !agent_host(uri.host().unwrap_or_default()) {
            return Err(format!(
                "AWS_CONTAINER_CREDENTIALS_FULL_URI {full:?} is plain http to a host that is \
                 neither loopback nor the EKS/ECS agent (169.254.170.23, 169.254.170.2, \
                 fd00:ec2::23): the token is not sent there"
            ));
        }
        let token = match (
            env.var("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
            env.var("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
        ) {
            (Some(file), _) => AgentToken::File(file),
            (None, Some(value)) => AgentToken::Value(
                secret_header(&value)
                    .map_err(|_| "AWS_CONTAINER_AUTHORIZATION_TOKEN is not a header value")?,
            ),
            (None, None) => {
                return Err(
                    "workloadIdentity aws-pod-identity: AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE \
                     not set in the sidecar's environment"
                        .into(),
                );
            }
        };
        Ok(PodIdentity {
            http: Arc::clone(http),
            uri,
            token,
        })
    }

    fn key(&self) -> String {
        let token = match &self.token {
            AgentToken::File(path) => path.as_str(),
            AgentToken::Value(_) => "(AWS_CONTAINER_AUTHORIZATION_TOKEN)",
        };
        format!("aws-pod-identity|{}|{token}", self.uri)
    }
}

impl Fetch for PodIdentity {
    type Value = Arc<Keys>;

    async fn fetch(&self) -> Result<Fetched<Arc<Keys>>, String> {
        let authorization = match &self.token {
            AgentToken::File(path) => secret_header(&read_token_file(path).await?)
                .map_err(|_| format!("the token in {path} is not a header value"))?,
            AgentToken::Value(value) => value.clone(),
        };
        let mut sent = request(Method::GET, &self.uri, None);
        sent.headers_mut().insert(AUTHORIZATION, authorization);
        sent.headers_mut()
            .insert(ACCEPT, HeaderValue::from_static("application/json"));
        let answer = exchange(&*self.http, sent).await?;
        if !answer.status.is_success() {
            // The agent answers errors as plain text.
            let said = String::from_utf8_lossy(&answer.body);
            return Err(format!(
                "the EKS Pod Identity agent ({}) answered {} ({})",
                self.uri,
                answer.status,
                clip(said.trim())
            ));
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Answer {
            access_key_id: String,
            secret_access_key: String,
            token: String,
            expiration: String,
        }
        let a: Answer = serde_json::from_slice(&answer.body)
            .map_err(|_| "the EKS Pod Identity agent's answer is not credentials".to_owned())?;
        let fields = HashMap::from([
            ("AccessKeyId".to_owned(), a.access_key_id),
            ("SecretAccessKey".to_owned(), a.secret_access_key),
            ("Token".to_owned(), a.token),
            ("Expiration".to_owned(), a.expiration),
        ]);
        keys(&fields, "Token", "the EKS Pod Identity agent")
    }

    fn describe(&self) -> String {
        "AWS credentials from the EKS Pod Identity agent".to_owned()
    }
}

/// The keys of an answer's fields and how long they live.
fn keys(
    fields: &HashMap<String, String>,
    token_field: &str,
    from: &str,
) -> Result<Fetched<Arc<Keys>>, String> {
    let field = |name: &str| {
        fields
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("the answer of {from} has no {name}"))
    };
    let keys = Keys::new(
        field("AccessKeyId")?,
        field("SecretAccessKey")?,
        Some(field(token_field)?),
    )
    .map_err(|e| format!("{from} issued unusable credentials: {e}"))?;
    let expiration = field("Expiration")?;
    let expiry = unix_seconds(expiration)
        .ok_or_else(|| format!("{from} gave an Expiration that is not a time: {expiration:?}"))?;
    Ok(Fetched {
        value: Arc::new(keys),
        lifetime: lifetime_until(expiry),
    })
}

/// The first 300 characters of what a service said.
fn clip(text: &str) -> &str {
    text.char_indices()
        .nth(300)
        .map_or(text, |(at, _)| &text[..at])
}

/// Whether plain http may carry the agent token to `host`: loopback or an agent address.
fn agent_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(ip) if ip.is_loopback() => true,
        Ok(ip) => ["169.254.170.2", "169.254.170.23", "fd00:ec2::23"]
            .iter()
            .any(|agent| agent.parse::<IpAddr>().is_ok_and(|a| a == ip)),
        Err(_) => false,
    }
}

/// Where STS is, as the AWS SDKs decide it.
fn sts_endpoint(env: &dyn Env, deployment_region: &str) -> Result<Uri, String> {
    if let Some(url) = env.var("AWS_ENDPOINT_URL_STS") {
        return http_url(&url, "AWS_ENDPOINT_URL_STS");
    }
    let region = first(env, &["AWS_REGION", "AWS_DEFAULT_REGION"])
        .unwrap_or_else(|| deployment_region.to_owned());
    if region.is_empty()
        || !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(format!("the AWS region {region:?} is not a region name"));
    }
    let legacy = env
        .var("AWS_STS_REGIONAL_ENDPOINTS")
        .is_some_and(|v| v.eq_ignore_ascii_case("legacy"));
    let url = if legacy && LEGACY_GLOBAL.contains(&region.as_str()) {
        "https://sts.amazonaws.com".to_owned()
    } else if region.starts_with("cn-") {
        format!("https://sts.{region}.amazonaws.com.cn")
    } else {
        format!("https://sts.{region}.amazonaws.com")
    };
    http_url(&url, "the STS endpoint")
}

#[cfg(test)]
#[path = "aws_tests.rs"]
mod tests;

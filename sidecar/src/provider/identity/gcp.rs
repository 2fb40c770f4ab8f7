//! Google access tokens for Vertex AI without a service-account key.
//!
//! **GKE Workload Identity** (`gcp-metadata`). On a node pool with Workload Identity the
//! GKE metadata server answers for the pod's ServiceAccount (and on GCE, for the VM's).
//! A fetch is `GET http://{GCE_METADATA_HOST or metadata.google.internal}/computeMetadata/v1/instance/service-accounts/default/token`
//! with `Metadata-Flavor: Google`; the answer is `{"access_token", "expires_in",
//! "token_type": "Bearer"}`. A deployment without `project` takes the metadata server's
//! `project/project-id` (plain text), asked once per sidecar when the config is applied
//! ([`ProjectCache`]).
//!
//! **Workload identity federation** (`gcp-external-account`). An `external_account`
//! credential configuration, from the deployment's `serviceAccountSecretRef` or the file
//! at `GOOGLE_APPLICATION_CREDENTIALS`, says where the subject token is
//! (`credential_source.file`, read anew on each fetch, or `credential_source.url` with
//! its `headers`; `format` `text`, or `json` with `subject_token_field_name`). A fetch
//! POSTs RFC 8693's form to Google STS (`token_url`, default
//! `https://sts.googleapis.com/v1/token`): `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`,
//! `audience`, `scope=https://www.googleapis.com/auth/cloud-platform`,
//! `requested_token_type=urn:ietf:params:oauth:token-type:access_token`,
//! `subject_token`, `subject_token_type`; the answer is `{"access_token",
//! "issued_token_type", "token_type", "expires_in"}`. With
//! `service_account_impersonation_url`, that token then POSTs `{"scope": [...],
//! "lifetime": "3600s"}` (or `service_account_impersonation.token_lifetime_seconds`) to
//! IAM Credentials' `generateAccessToken`, whose `{"accessToken", "expireTime"}` is the
//! token used. AWS- and executable-sourced subject tokens, workforce pools and a
//! `quota_project_id` are refused by name.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, HeaderName, HeaderValue};
use http::{Method, Uri};
use ring::digest;
use serde::Deserialize;
use serde_json::json;

use super::cache::{Fetch, Fetched};
use super::net::{
    FORM, bearer, error_said, exchange, exchange_within, form, http_url, lifetime_until,
    oauth_token, read_token_file, request, unix_seconds,
};
use super::{BearerSource, Env, shared, unavailable};
use crate::config::snapshot::{DeploymentSpec, WorkloadIdentity};
use crate::hex::hex;
use crate::provider::google_auth::SCOPE;
use crate::provider::{BuildError, ProviderContext, secret_header};
use crate::upstream::Transport;

/// The metadata server's name on GCE and GKE.
const METADATA_HOST: &str = "metadata.google.internal";
/// Google STS, when the configuration names none.
const DEFAULT_STS_URL: &str = "https://sts.googleapis.com/v1/token";
/// The impersonated token's lifetime, when the configuration says none.
const DEFAULT_IMPERSONATION_SECS: u64 = 3600;
/// One ask of the metadata server for the project; it answers locally.
const PROJECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Waits between asks: GKE's metadata server may take a few seconds to serve a new pod.
const PROJECT_RETRIES: [Duration; 3] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];
/// Credential configurations are small.
const MAX_CONFIG: u64 = 64 * 1024;

/// The token source of a Vertex AI deployment with `identity`, shared with other
/// deployments of the same identity. What only this pod lacks (a variable, a file)
/// gives a source that fails with the reason; what the deployment got wrong (a
/// credential configuration in its Secret that cannot be used) is a build error.
pub fn source(
    identity: WorkloadIdentity,
    spec: &DeploymentSpec,
    ctx: &ProviderContext,
) -> Result<BearerSource, BuildError> {
    match identity {
        WorkloadIdentity::GcpMetadata => Ok(match Metadata::from_env(&*ctx.env, &ctx.http) {
            Ok(f) => shared(&ctx.bearer, f.key(), f),
            Err(why) => unavailable(why),
        }),
        WorkloadIdentity::GcpExternalAccount => {
            let made = match &spec.gcp_service_account {
                Some(secret) => ExternalAccount::from_json(secret.expose(), &ctx.http)
                    .map_err(|e| BuildError::Invalid(format!("serviceAccountSecretRef: {e}")))?,
                None => match config_from_env(&*ctx.env)
                    .and_then(|json| ExternalAccount::from_json(&json, &ctx.http))
                {
                    Ok(made) => made,
                    Err(why) => return Ok(unavailable(why)),
                },
            };
            Ok(shared(&ctx.bearer, made.key(), made))
        }
        other => Err(BuildError::Invalid(format!(
            "workloadIdentity {} does not apply to vertex (gcp-metadata and \
             gcp-external-account do)",
            other.as_str()
        ))),
    }
}

/// The configuration at `GOOGLE_APPLICATION_CREDENTIALS`.
fn config_from_env(env: &dyn Env) -> Result<String, String> {
    let path = env.var("GOOGLE_APPLICATION_CREDENTIALS").ok_or(
        "workloadIdentity gcp-external-account: no credential configuration: set \
         serviceAccountSecretRef, or GOOGLE_APPLICATION_CREDENTIALS in the sidecar's environment",
    )?;
    let size = std::fs::metadata(&path)
        .map_err(|e| format!("GOOGLE_APPLICATION_CREDENTIALS {path}: {e}"))?
        .len();
    if size > MAX_CONFIG {
        return Err(format!(
            "GOOGLE_APPLICATION_CREDENTIALS {path} is larger than 64 KiB"
        ));
    }
    std::fs::read_to_string(&path)
        .map_err(|e| format!("GOOGLE_APPLICATION_CREDENTIALS {path}: {e}"))
}

/// The metadata server's address, `http://host[:port]`.
fn metadata_base(env: &dyn Env) -> Result<String, String> {
    let host = env
        .var("GCE_METADATA_HOST")
        .unwrap_or_else(|| METADATA_HOST.to_owned());
    if host.contains(['/', '?', '#', '@']) {
        return Err(format!("GCE_METADATA_HOST {host:?} must be a host[:port]"));
    }
    let base = format!("http://{host}");
    http_url(&base, "GCE_METADATA_HOST")?;
    Ok(base)
}

/// A request to the metadata server.
fn metadata_request(uri: &Uri) -> http::Request<Bytes> {
    let mut sent = request(Method::GET, uri, None);
    sent.headers_mut().insert(
        HeaderName::from_static("metadata-flavor"),
        HeaderValue::from_static("Google"),
    );
    sent
}

/// GKE Workload Identity: the metadata server's token endpoint.
pub struct Metadata {
    http: Arc<dyn Transport>,
    token: Uri,
}

impl Metadata {
    /// The flow at the metadata server the environment names.
    pub fn from_env(env: &dyn Env, http: &Arc<dyn Transport>) -> Result<Self, String> {
        let base = metadata_base(env)?;
        Ok(Metadata {
            http: Arc::clone(http),
            token: http_url(
                &format!("{base}/computeMetadata/v1/instance/service-accounts/default/token"),
                "the metadata token URL",
            )?,
        })
    }

    fn key(&self) -> String {
        format!("gcp-metadata|{}", self.token)
    }
}

impl Fetch for Metadata {
    type Value = HeaderValue;

    async fn fetch(&self) -> Result<Fetched<HeaderValue>, String> {
        let answer = exchange(&*self.http, metadata_request(&self.token)).await?;
        if !answer.status.is_success() {
            return Err(format!(
                "the metadata server ({}) answered {} ({})",
                self.token,
                answer.status,
                error_said(&answer.body)
            ));
        }
        oauth_token(&answer.body, "the metadata server")
    }

    fn describe(&self) -> String {
        "Google access token from the metadata server (GKE Workload Identity)".to_owned()
    }
}

/// The project the metadata server names, asked once per sidecar.
#[derive(Default)]
pub struct ProjectCache {
    known: Mutex<Option<String>>,
    /// Why the last ask failed.
    failed: Mutex<Option<String>>,
    /// Held by the one ask in flight.
    asking: tokio::sync::Mutex<()>,
}

impl ProjectCache {
    /// The project, if it has been learnt.
    pub fn known(&self) -> Option<String> {
        self.known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Why the project is not known: the last ask's failure.
    pub fn failure(&self) -> String {
        self.failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_else(|| "the metadata server was not asked".to_owned())
    }

    /// Asks the metadata server for the project (retrying a few times over some
    /// seconds, as a new pod's metadata server may not answer yet), unless known.
    pub async fn discover(&self, env: &dyn Env, http: &dyn Transport) -> Result<String, String> {
        let _asking = self.asking.lock().await;
        if let Some(project) = self.known() {
            return Ok(project);
        }
        let uri = http_url(
            &format!(
                "{}/computeMetadata/v1/project/project-id",
                metadata_base(env)?
            ),
            "the metadata project URL",
        )?;
        let mut waits = PROJECT_RETRIES.iter();
        loop {
            let failure = match exchange_within(http, metadata_request(&uri), PROJECT_TIMEOUT).await
            {
                Ok(answer) if answer.status.is_success() => {
                    let project = String::from_utf8_lossy(&answer.body).trim().to_owned();
                    if project.is_empty() || project.contains(['/', '?', '#', ' ']) {
                        return Err(format!(
                            "the metadata server's project-id {project:?} is not a project id"
                        ));
                    }
                    *self.known.lock().unwrap_or_else(PoisonError::into_inner) =
                        Some(project.clone());
                    return Ok(project);
                }
                Ok(answer) => format!("{uri} answered {}", answer.status),
                Err(e) => e,
            };
            match waits.next() {
                Some(wait) => tokio::time::sleep(*wait).await,
                None => {
                    let why =
                        format!("cannot learn the project from the metadata server: {failure}");
                    *self.failed.lock().unwrap_or_else(PoisonError::into_inner) = Some(why.clone());
                    return Err(why);
                }
            }
        }
    }
}

/// Workload identity federation: an `external_account` credential configuration.
pub struct ExternalAccount {
    http: Arc<dyn Transport>,
    /// Identifies the configuration for sharing: a hash of its text.
    digest: String,
    audience: String,
    subject_token_type: String,
    sts: Uri,
    subject: Subject,
    impersonation: Option<(Uri, u64)>,
}

/// Where the subject token is.
enum Subject {
    File {
        path: String,
        format: Format,
    },
    Url {
        uri: Uri,
        headers: Vec<(HeaderName, HeaderValue)>,
        format: Format,
    },
}

/// How the subject token is written.
enum Format {
    Text,
    Json(String),
}

#[derive(Deserialize)]
struct Config {
    #[serde(rename = "type")]
    kind: String,
    audience: String,
    subject_token_type: String,
    #[serde(default)]
    token_url: Option<String>,
    #[serde(default)]
    service_account_impersonation_url: Option<String>,
    #[serde(default)]
    service_account_impersonation: Option<ImpersonationConfig>,
    credential_source: SourceConfig,
    #[serde(default)]
    quota_project_id: Option<String>,
    #[serde(default)]
    workforce_pool_user_project: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    universe_domain: Option<String>,
}

#[derive(Deserialize)]
struct ImpersonationConfig {
    #[serde(default)]
    token_lifetime_seconds: Option<u64>,
}

#[derive(Deserialize)]
struct SourceConfig {
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    headers: HashMap<String, String>,
    #[serde(default)]
    format: Option<FormatConfig>,
    #[serde(default)]
    environment_id: Option<String>,
    #[serde(default)]
    executable: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct FormatConfig {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    subject_token_field_name: Option<String>,
}

impl ExternalAccount {
    /// Reads a credential configuration; errors never quote it.
    pub fn from_json(json: &str, http: &Arc<dyn Transport>) -> Result<Self, String> {
        let config: Config = serde_json::from_str(json).map_err(|e| {
            format!(
                "not an external_account credential configuration (line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        if config.kind != "external_account" {
            return Err(format!(
                "the credential configuration has type {:?}; workloadIdentity \
                 gcp-external-account takes an \"external_account\" one",
                config.kind
            ));
        }
        let refuse = |what: &str| {
            Err(format!(
                "the credential configuration's {what} is not supported"
            ))
        };
        if config.workforce_pool_user_project.is_some() || config.client_secret.is_some() {
            return refuse("workforce pool settings (workforce_pool_user_project, client_secret)");
        }
        if config.quota_project_id.is_some() {
            return refuse(
                "quota_project_id (remove it: Vertex AI bills the deployment's project)",
            );
        }
        if config
            .universe_domain
            .as_deref()
            .is_some_and(|d| d != "googleapis.com")
        {
            return refuse("universe_domain other than googleapis.com");
        }
        let source = config.credential_source;
        if source.environment_id.is_some() {
            return refuse("AWS-sourced subject token (credential_source.environment_id)");
        }
        if source.executable.is_some() {
            return refuse("executable-sourced subject token (credential_source.executable)");
        }
        let format = match source.format {
            None => Format::Text,
            Some(f) if f.kind == "text" => Format::Text,
            Some(f) if f.kind == "json" => Format::Json(
                f.subject_token_field_name
                    .ok_or("credential_source.format json needs subject_token_field_name")?,
            ),
            Some(f) => {
                return Err(format!(
                    "credential_source.format type {:?} is not text or json",
                    f.kind
                ));
            }
        };
        let subject = match (source.file, source.url) {
            (Some(path), None) => Subject::File { path, format },
            (None, Some(url)) => {
                let headers = source
                    .headers
                    .iter()
                    .map(|(name, value)| {
                        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                            format!("credential_source.headers: {name:?} is not a header name")
                        })?;
                        let value = secret_header(value).map_err(|_| {
                            format!("credential_source.headers: {name} is not a header value")
                        })?;
                        Ok((name, value))
                    })
                    .collect::<Result<_, String>>()?;
                Subject::Url {
                    uri: http_url(&url, "credential_source.url")?,
                    headers,
                    format,
                }
            }
            _ => return Err("credential_source needs exactly one of file and url".into()),
        };
        let impersonation = match config.service_account_impersonation_url {
            None => None,
            Some(url) => {
                let secs = config
                    .service_account_impersonation
                    .and_then(|i| i.token_lifetime_seconds)
                    .unwrap_or(DEFAULT_IMPERSONATION_SECS);
                if !(600..=43_200).contains(&secs) {
                    return Err(
                        "service_account_impersonation.token_lifetime_seconds must be 600 to 43200"
                            .into(),
                    );
                }
                Some((http_url(&url, "service_account_impersonation_url")?, secs))
            }
        };
        Ok(ExternalAccount {
            http: Arc::clone(http),
            digest: hex(digest::digest(&digest::SHA256, json.as_bytes()).as_ref()),
            audience: config.audience,
            subject_token_type: config.subject_token_type,
            sts: http_url(
                config.token_url.as_deref().unwrap_or(DEFAULT_STS_URL),
                "token_url",
            )?,
            subject,
            impersonation,
        })
    }

    fn key(&self) -> String {
        format!("gcp-external-account|{}", self.digest)
    }

    /// The subject token, read anew.
    async fn subject_token(&self) -> Result<String, String> {
        let (raw, format) = match &self.subject {
            Subject::File { path, format } => (read_token_file(path).await?, format),
            Subject::Url {
                uri,
                headers,
                format,
            } => {
                let mut sent = request(Method::GET, uri, None);
                for (name, value) in headers {
                    sent.headers_mut().insert(name.clone(), value.clone());
                }
                let answer = exchange(&*self.http, sent).await?;
                if !answer.status.is_success() {
                    return Err(format!(
                        "the subject token URL {uri} answered {}",
                        answer.status
                    ));
                }
                let text = String::from_utf8(answer.body.to_vec())
                    .map_err(|_| format!("the subject token from {uri} is not text"))?;
                (text.trim().to_owned(), format)
            }
        };
        match format {
            Format::Text => Ok(raw),
            Format::Json(field) => serde_json::from_str::<serde_json::Value>(&raw)
                .ok()
                .and_then(|v| v.get(field).and_then(|t| t.as_str()).map(str::to_owned))
                .filter(|t| !t.is_empty())
                .ok_or_else(|| format!("the subject token's JSON has no string {field:?}")),
        }
    }
}

impl Fetch for ExternalAccount {
    type Value = HeaderValue;

    async fn fetch(&self) -> Result<Fetched<HeaderValue>, String> {
        let subject = self.subject_token().await?;
        let body = form(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("audience", &self.audience),
            ("scope", SCOPE),
            (
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            ("subject_token", &subject),
            ("subject_token_type", &self.subject_token_type),
        ]);
        let answer = exchange(
            &*self.http,
            request(Method::POST, &self.sts, Some((FORM, body))),
        )
        .await?;
        if !answer.status.is_success() {
            return Err(format!(
                "Google STS ({}) answered {} ({})",
                self.sts,
                answer.status,
                error_said(&answer.body)
            ));
        }
        let federated = oauth_token(&answer.body, "Google STS")?;
        let Some((url, lifetime)) = &self.impersonation else {
            return Ok(federated);
        };
        let body = json!({"scope": [SCOPE], "lifetime": format!("{lifetime}s")}).to_string();
        let mut sent = request(
            Method::POST,
            url,
            Some(("application/json", Bytes::from(body))),
        );
        sent.headers_mut().insert(AUTHORIZATION, federated.value);
        sent.headers_mut()
            .insert(ACCEPT, HeaderValue::from_static("application/json"));
        let answer = exchange(&*self.http, sent).await?;
        if !answer.status.is_success() {
            return Err(format!(
                "IAM Credentials generateAccessToken ({url}) answered {} ({})",
                answer.status,
                error_said(&answer.body)
            ));
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Impersonated {
            access_token: String,
            expire_time: String,
        }
        let token: Impersonated = serde_json::from_slice(&answer.body)
            .map_err(|_| "the generateAccessToken answer is not an access token".to_owned())?;
        let expiry = unix_seconds(&token.expire_time).ok_or_else(|| {
            format!(
                "generateAccessToken gave an expireTime that is not a time: {:?}",
                token.expire_time
            )
        })?;
        Ok(Fetched {
            value: bearer(&token.access_token, "IAM Credentials")?,
            lifetime: lifetime_until(expiry),
        })
    }

    fn describe(&self) -> String {
        format!(
            "Google access token through workload identity federation ({})",
            self.audience
        )
    }
}

#[cfg(test)]
#[path = "gcp_tests.rs"]
mod tests;

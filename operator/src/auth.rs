//! Who is calling the push and usage endpoints: a sidecar's projected service-account
//! token, checked by a TokenReview that must grant the `llmesh` audience.
//!
//! The result names the namespace whose config the caller may read and the subject
//! its usage is recorded under (the pod for a pod-bound token, else the service
//! account), so a pod can neither read another namespace's config nor report under
//! another sidecar's name. A pod-bound token must belong to a pod the webhook injected
//! (same uid, `llmesh.io/injected: "true"`): other pods of the namespace get nothing,
//! even with a token for the `llmesh` audience. Tokens bound to no pod (clusters older
//! than Kubernetes 1.30 do not say which pod) are refused unless allowed. Reviews are cached (accepted ones for a minute, never past the
//! token's own expiry; refused ones for ten seconds) and new reviews are rate-limited, so
//! neither a fleet reconnecting at once nor a caller trying tokens floods the API server.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use llmesh_sidecar::config::push::AUDIENCE;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

/// The TokenReview `user.extra` key naming the pod a bound token belongs to.
pub const POD_UID: &str = "authentication.kubernetes.io/pod-uid";
/// The TokenReview `user.extra` key with that pod's name.
pub const POD_NAME: &str = "authentication.kubernetes.io/pod-name";
/// The annotation the webhook sets on pods it injected.
pub const INJECTED: &str = "llmesh.io/injected";
/// How long an accepted review is trusted (and how often a connection is re-reviewed).
pub const REVIEW_TTL: Duration = Duration::from_secs(60);
/// How long a refused review is remembered.
const REFUSED_TTL: Duration = Duration::from_secs(10);
/// New reviews per second, sustained, and the burst allowed above it.
const REVIEWS_PER_SEC: u32 = 50;
const REVIEW_BURST: u32 = 200;

/// A caller the API server vouched for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The namespace of its service account: the only config it may read.
    pub namespace: String,
    /// Who it is, for usage records: `pod:<uid>` for a pod-bound token, else
    /// `sa:<uid or name>`.
    pub subject: String,
    /// When the token itself expires, if it says (a JWT's `exp`).
    pub expires: Option<SystemTime>,
    /// The pod (name, uid) a bound token belongs to.
    pub pod: Option<(String, String)>,
}

impl Identity {
    /// An identity for `namespace` without an expiry (tests, local tools).
    pub fn namespace(namespace: &str) -> Identity {
        Identity {
            namespace: namespace.to_owned(),
            subject: format!("sa:{namespace}"),
            expires: None,
            pod: None,
        }
    }
}

/// Why a caller was refused.
#[derive(Clone, Debug, thiserror::Error)]
pub enum AuthError {
    /// No or a malformed bearer token.
    #[error("missing bearer token")]
    Missing,
    /// The token is not valid for the `llmesh` audience.
    #[error("token not accepted: {0}")]
    Rejected(String),
    /// The token is not a service account's.
    #[error("token is not a service account's ({0})")]
    NotServiceAccount(String),
    /// The TokenReview itself failed, or too many are being asked for: try later.
    #[error("token review failed: {0}")]
    Review(String),
}

/// Turns a bearer token into the caller's identity.
pub type AuthFuture<'a> = Pin<Box<dyn Future<Output = Result<Identity, AuthError>> + Send + 'a>>;

/// Authenticates sidecars.
pub trait Authenticator: Send + Sync + 'static {
    /// Who holds `token`.
    fn identify<'a>(&'a self, token: &'a str) -> AuthFuture<'a>;
}

type Cached = (Result<Identity, AuthError>, Instant);

/// Authenticates with TokenReviews, caching and rate-limiting them.
pub struct TokenReviewer {
    client: kube::Client,
    cache: Mutex<HashMap<[u8; 32], Cached>>,
    bucket: Mutex<(u32, Instant)>,
    allow_unbound: bool,
}

impl TokenReviewer {
    /// A reviewer using `client`.
    pub fn new(client: kube::Client) -> Self {
        TokenReviewer {
            client,
            cache: Mutex::new(HashMap::new()),
            bucket: Mutex::new((REVIEW_BURST, Instant::now())),
            allow_unbound: false,
        }
    }

    /// Accepts tokens bound to no pod (`LLMESH_ALLOW_UNBOUND_TOKENS`): for clusters whose
    /// TokenReviews do not name the pod. Any pod of a namespace can then read its config.
    pub fn allow_unbound(mut self, allow: bool) -> Self {
        self.allow_unbound = allow;
        self
    }

    /// Refuses a token whose pod is not one the webhook injected.
    async fn check_pod(&self, identity: &Identity) -> Result<(), AuthError> {
        let Some((name, uid)) = &identity.pod else {
            return if self.allow_unbound {
                Ok(())
            } else {
                Err(AuthError::Rejected(
                    "the token is bound to no pod (set LLMESH_ALLOW_UNBOUND_TOKENS=true on clusters older than Kubernetes 1.30)".into(),
                ))
            };
        };
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &identity.namespace);
        let pod = pods
            .get_opt(name)
            .await
            .map_err(|e| AuthError::Review(format!("reading pod {name}: {e}")))?;
        let injected = pod.as_ref().is_some_and(|p| {
            p.metadata.uid.as_deref() == Some(uid.as_str())
                && p.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(INJECTED))
                    .is_some_and(|v| v == "true")
        });
        if injected {
            Ok(())
        } else {
            Err(AuthError::Rejected(format!(
                "pod {name} is not a pod llmesh injected"
            )))
        }
    }

    /// Takes one review from the bucket; `false` when it is empty.
    fn allow_review(&self) -> bool {
        let mut bucket = self
            .bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        take(&mut bucket, Instant::now())
    }

    async fn review(&self, token: &str) -> Result<Identity, AuthError> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: Some(vec![AUDIENCE.to_owned()]),
            },
            ..TokenReview::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let answer = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| AuthError::Review(e.to_string()))?;
        let identity = judge(answer.status.unwrap_or_default(), token)?;
        self.check_pod(&identity).await?;
        Ok(identity)
    }
}

/// Refills a token bucket of reviews (`REVIEWS_PER_SEC`, at most `REVIEW_BURST`) up to
/// `now` and takes one; `false` when none is left.
fn take(bucket: &mut (u32, Instant), now: Instant) -> bool {
    let (tokens, last) = bucket;
    let refill = now.duration_since(*last).as_millis() * u128::from(REVIEWS_PER_SEC) / 1000;
    if refill > 0 {
        let refill = u32::try_from(refill).unwrap_or(u32::MAX);
        *tokens = tokens.saturating_add(refill).min(REVIEW_BURST);
        *last = now;
    }
    if *tokens == 0 {
        return false;
    }
    *tokens -= 1;
    true
}

/// The identity a review's status vouches for, or why not.
pub fn judge(
    status: k8s_openapi::api::authentication::v1::TokenReviewStatus,
    token: &str,
) -> Result<Identity, AuthError> {
    if status.authenticated != Some(true) {
        return Err(AuthError::Rejected(
            status.error.unwrap_or_else(|| "not authenticated".into()),
        ));
    }
    // A review that does not say which audiences it granted granted none we asked for.
    if !status
        .audiences
        .as_ref()
        .is_some_and(|a| a.iter().any(|a| a == AUDIENCE))
    {
        return Err(AuthError::Rejected(format!(
            "audience {AUDIENCE} not granted"
        )));
    }
    let user = status.user.unwrap_or_default();
    let username = user.username.unwrap_or_default();
    let namespace = service_account_namespace(&username)
        .ok_or_else(|| AuthError::NotServiceAccount(username.clone()))?;
    let extra = |key: &str| {
        user.extra
            .as_ref()
            .and_then(|e| e.get(key))
            .and_then(|v| v.first())
            .filter(|v| !v.is_empty())
            .cloned()
    };
    let pod_name = extra(POD_NAME);
    let pod = extra(POD_UID);
    let bound = pod_name.zip(pod.clone());
    let subject = match (pod, user.uid.filter(|u| !u.is_empty())) {
        (Some(pod), _) => format!("pod:{pod}"),
        (None, Some(uid)) => format!("sa:{uid}"),
        (None, None) => format!("sa:{username}"),
    };
    Ok(Identity {
        namespace,
        subject,
        expires: jwt_expiry(token),
        pod: bound,
    })
}

impl Authenticator for TokenReviewer {
    fn identify<'a>(&'a self, token: &'a str) -> AuthFuture<'a> {
        Box::pin(async move {
            let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            let now = Instant::now();
            let fresh = |result: &Result<Identity, AuthError>, at: Instant| {
                let ttl = if result.is_ok() {
                    REVIEW_TTL
                } else {
                    REFUSED_TTL
                };
                let expired = result
                    .as_ref()
                    .ok()
                    .and_then(|i| i.expires)
                    .is_some_and(|exp| exp <= SystemTime::now());
                now.duration_since(at) < ttl && !expired
            };
            {
                let cache = self
                    .cache
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some((result, at)) = cache.get(&digest)
                    && fresh(result, *at)
                {
                    return result.clone();
                }
            }
            if !self.allow_review() {
                return Err(AuthError::Review(
                    "too many token reviews at once; retry shortly".into(),
                ));
            }
            let result = match self.review(token).await {
                // The review could not be made: nothing is known, nothing is cached.
                Err(AuthError::Review(e)) => return Err(AuthError::Review(e)),
                Ok(identity) if identity.expires.is_some_and(|e| e <= SystemTime::now()) => {
                    Err(AuthError::Rejected("the token has expired".into()))
                }
                other => other,
            };
            let mut cache = self
                .cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            cache.retain(|_, (r, at)| fresh(r, *at));
            cache.insert(digest, (result.clone(), now));
            result
        })
    }
}

/// `system:serviceaccount:NAMESPACE:NAME` → `NAMESPACE`.
pub fn service_account_namespace(username: &str) -> Option<String> {
    let rest = username.strip_prefix("system:serviceaccount:")?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty()).then(|| ns.to_owned())
}

/// The `exp` claim of a JWT (not verified: the review did that), if the token is one.
pub fn jwt_expiry(token: &str) -> Option<SystemTime> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?.as_u64()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(exp))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use k8s_openapi::api::authentication::v1::{TokenReviewStatus, UserInfo};

    fn status(audiences: Option<Vec<&str>>, extra: Option<(&str, &str)>) -> TokenReviewStatus {
        TokenReviewStatus {
            authenticated: Some(true),
            audiences: audiences.map(|a| a.into_iter().map(str::to_owned).collect()),
            user: Some(UserInfo {
                username: Some("system:serviceaccount:team-a:app".into()),
                uid: Some("sa-uid".into()),
                extra: extra.map(|(k, v)| [(k.to_owned(), vec![v.to_owned()])].into()),
                ..UserInfo::default()
            }),
            ..TokenReviewStatus::default()
        }
    }

    #[test]
    fn service_account_usernames_name_their_namespace() {
        assert_eq!(
            service_account_namespace("system:serviceaccount:team-a:default").as_deref(),
            Some("team-a")
        );
        assert_eq!(service_account_namespace("system:serviceaccount::x"), None);
        assert_eq!(service_account_namespace("alice"), None);
        assert_eq!(service_account_namespace("system:serviceaccount:ns"), None);
    }

    #[test]
    fn the_review_must_grant_the_llmesh_audience() {
        assert!(matches!(
            judge(status(None, None), "t"),
            Err(AuthError::Rejected(_))
        ));
        assert!(matches!(
            judge(status(Some(vec!["api"]), None), "t"),
            Err(AuthError::Rejected(_))
        ));
        let id = judge(status(Some(vec![AUDIENCE]), None), "t").unwrap();
        assert_eq!(id.namespace, "team-a");
        assert_eq!(id.subject, "sa:sa-uid");
    }

    #[test]
    fn a_pod_bound_token_is_its_pod() {
        let id = judge(status(Some(vec![AUDIENCE]), Some((POD_UID, "p-1"))), "t").unwrap();
        assert_eq!(id.subject, "pod:p-1");
        assert_eq!(id.pod, None, "a pod is named by its name and uid");
    }

    /// A caller trying token after token gets a burst of reviews, then 50 a second.
    #[tokio::test(start_paused = true)]
    async fn new_reviews_are_rate_limited() {
        let start = Instant::now();
        let mut bucket = (REVIEW_BURST, start);
        let burst = (0..1_000).filter(|_| take(&mut bucket, start)).count();
        assert_eq!(burst, REVIEW_BURST as usize);
        let later = start + Duration::from_secs(1);
        let next = (0..1_000).filter(|_| take(&mut bucket, later)).count();
        assert_eq!(next, REVIEWS_PER_SEC as usize);
        // Never more than the burst, however long it was quiet.
        let much_later = later + Duration::from_secs(3_600);
        let again = (0..1_000).filter(|_| take(&mut bucket, much_later)).count();
        assert_eq!(again, REVIEW_BURST as usize);
    }

    #[test]
    fn a_jwt_says_when_it_expires() {
        let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let jwt = format!(
            "{}.{}.sig",
            b64(r#"{"alg":"RS256"}"#),
            b64(r#"{"exp":1700000000}"#)
        );
        assert_eq!(
            jwt_expiry(&jwt),
            Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
        assert_eq!(jwt_expiry("opaque-token"), None);
        assert_eq!(jwt_expiry("a.!!!.c"), None);
        let id = judge(status(Some(vec![AUDIENCE]), None), &jwt).unwrap();
        assert!(id.expires.is_some());
    }
}

//! Cloud workload identity: credentials a pod gets from where it runs, with no static
//! key in a Secret. A deployment chooses its flow with `workloadIdentity`:
//!
//! | `workloadIdentity` | provider | what the sidecar does | module |
//! |---|---|---|---|
//! | `aws-web-identity` | bedrock | IRSA: the projected token in `AWS_WEB_IDENTITY_TOKEN_FILE` → STS `AssumeRoleWithWebIdentity` for `AWS_ROLE_ARN` | [`aws`] |
//! | `aws-pod-identity` | bedrock | EKS Pod Identity: `GET AWS_CONTAINER_CREDENTIALS_FULL_URI` with the token in `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` | [`aws`] |
//! | `gcp-metadata` | vertex | GKE Workload Identity: the metadata server's token endpoint | [`gcp`] |
//! | `gcp-external-account` | vertex | workload identity federation: a subject token → Google STS → optionally IAM `generateAccessToken` | [`gcp`] |
//! | `azure-workload-identity` | azure | the token in `AZURE_FEDERATED_TOKEN_FILE` → Entra ID's token endpoint | [`azure`] |
//!
//! Each flow is a [`Fetch`](cache::Fetch): it gets a fresh credential and says how long
//! it lives. One [`Cached`](cache::Cached) type keeps it for every flow (the Vertex AI
//! service-account flow in `google_auth` too): refreshed ahead of expiry by one request
//! while the others use the valid one, and forgotten when the upstream refuses it
//! (`Credential::refused`). Sources are shared across config reloads by [`Registry`],
//! so a reload fetches nothing.
//!
//! The environment is what the cloud's webhook injected into the sidecar's container (or
//! the shell of `llmesh-local`); it is read through [`Env`], so tests hand in their own.
//! A variable a flow needs and does not find leaves that deployment's credential
//! [`Unavailable`] (its calls fail with the reason, and other deployments keep serving):
//! pods of one namespace share a config but not a ServiceAccount.

pub mod aws;
pub mod azure;
pub mod cache;
#[cfg(test)]
mod fake;
pub mod gcp;
pub(crate) mod net;
mod xml;

use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use futures_util::future::BoxFuture;

use super::CredentialError;

/// Where the sidecar reads its environment.
pub trait Env: Send + Sync + 'static {
    /// The variable's value; unset and empty are the same (as for the AWS SDKs).
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl<S: BuildHasher + Send + Sync + 'static> Env for HashMap<String, String, S> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.is_empty()).cloned()
    }
}

/// A credential value and the generation it belongs to.
#[derive(Clone, Debug)]
pub struct Lease<T> {
    /// The value.
    pub value: T,
    /// Which fetch produced it; [`Source::invalidate`] names it.
    pub generation: u64,
}

/// Where a credential value comes from: fixed, or fetched and refreshed.
pub trait Source<T>: Send + Sync + 'static {
    /// The value to use now.
    fn lease(&self) -> BoxFuture<'_, Result<Lease<T>, CredentialError>>;

    /// The upstream refused the value of `generation`: forget it, so the next lease
    /// fetches a new one. Returns whether a new value can be expected (false for fixed
    /// values, which nothing refreshes).
    fn invalidate(&self, generation: u64) -> bool;
}

/// Where `Authorization: Bearer` values come from.
pub type BearerSource = Arc<dyn Source<http::HeaderValue>>;

/// A value that never changes (a key from a Secret).
pub struct Fixed<T>(pub T);

impl<T: Clone + Send + Sync + 'static> Source<T> for Fixed<T> {
    fn lease(&self) -> BoxFuture<'_, Result<Lease<T>, CredentialError>> {
        let lease = Lease {
            value: self.0.clone(),
            generation: 0,
        };
        Box::pin(std::future::ready(Ok(lease)))
    }

    fn invalidate(&self, _generation: u64) -> bool {
        false
    }
}

/// A credential this pod cannot get, and why (a variable the flow needs is not set).
pub struct Unavailable(pub String);

impl<T: Send + 'static> Source<T> for Unavailable {
    fn lease(&self) -> BoxFuture<'_, Result<Lease<T>, CredentialError>> {
        Box::pin(std::future::ready(Err(CredentialError(self.0.clone()))))
    }

    fn invalidate(&self, _generation: u64) -> bool {
        false
    }
}

impl fmt::Debug for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Unavailable").field(&self.0).finish()
    }
}

/// Sources by a key naming what they fetch, kept while any deployment uses them so
/// config reloads reuse cached credentials.
pub struct Registry<T: ?Sized> {
    entries: Mutex<HashMap<String, Weak<T>>>,
}

impl<T: ?Sized> Default for Registry<T> {
    fn default() -> Self {
        Registry {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: ?Sized> Registry<T> {
    /// The source for `key`, shared if one exists, else made by `make`.
    pub fn get_or_insert<E>(
        &self,
        key: String,
        make: impl FnOnce() -> Result<Arc<T>, E>,
    ) -> Result<Arc<T>, E> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|_, weak| weak.strong_count() > 0);
        if let Some(existing) = entries.get(&key).and_then(Weak::upgrade) {
            return Ok(existing);
        }
        let source = make()?;
        entries.insert(key, Arc::downgrade(&source));
        Ok(source)
    }
}

/// The cached source of `fetcher`, shared through `registry` under `key` with every
/// deployment fetching the same credential.
pub(crate) fn shared<F: cache::Fetch>(
    registry: &Registry<dyn Source<F::Value>>,
    key: String,
    fetcher: F,
) -> Arc<dyn Source<F::Value>> {
    let made = registry.get_or_insert(key, || {
        Ok::<_, std::convert::Infallible>(
            Arc::new(cache::Cached::new(fetcher)) as Arc<dyn Source<F::Value>>
        )
    });
    match made {
        Ok(source) => source,
        Err(never) => match never {},
    }
}

/// A source that fails with `why`, logged once here (when the config is applied).
pub(crate) fn unavailable<T: Send + 'static>(why: String) -> Arc<dyn Source<T>> {
    tracing::warn!("{why}");
    Arc::new(Unavailable(why))
}

/// The first variable of `names` that is set.
fn first(env: &dyn Env, names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| env.var(name))
}

/// The variables a flow needs, or why the credential is unavailable.
fn required<const N: usize>(
    env: &dyn Env,
    flow: &str,
    names: [&str; N],
    hint: &str,
) -> Result<[String; N], String> {
    let missing: Vec<&str> = names
        .iter()
        .filter(|name| env.var(name).is_none())
        .copied()
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "workloadIdentity {flow}: {} not set in the sidecar's environment ({hint})",
            missing.join(", ")
        ));
    }
    Ok(names.map(|name| env.var(name).unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fixed_and_unavailable_sources_never_refresh() {
        let fixed = Fixed(7u8);
        assert_eq!(fixed.lease().await.unwrap().value, 7);
        assert!(!fixed.invalidate(0));
        let none = Unavailable("AWS_ROLE_ARN not set".into());
        let err = Source::<u8>::lease(&none).await.unwrap_err();
        assert!(err.to_string().contains("AWS_ROLE_ARN"), "{err}");
        assert!(!Source::<u8>::invalidate(&none, 0));
    }

    #[test]
    fn registries_share_live_sources_only() {
        let registry: Registry<dyn Source<u8>> = Registry::default();
        let make = || Ok::<_, ()>(Arc::new(Fixed(1u8)) as Arc<dyn Source<u8>>);
        let a = registry.get_or_insert("k".into(), make).unwrap();
        let b = registry.get_or_insert("k".into(), make).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let c = registry.get_or_insert("other".into(), make).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        drop((a, b));
        let d = registry.get_or_insert("k".into(), make).unwrap();
        assert_eq!(
            Arc::strong_count(&d),
            1,
            "a dropped source is not kept alive"
        );
    }

    #[test]
    fn env_maps_treat_empty_as_unset_and_name_what_is_missing() {
        let env: HashMap<String, String> = [
            ("A".to_owned(), "1".to_owned()),
            ("B".into(), String::new()),
        ]
        .into_iter()
        .collect();
        assert_eq!(env.var("A").as_deref(), Some("1"));
        assert_eq!(env.var("B"), None);
        assert_eq!(first(&env, &["B", "A"]).as_deref(), Some("1"));
        assert_eq!(required(&env, "x", ["A"], "").unwrap(), ["1".to_owned()]);
        let err = required(&env, "aws-web-identity", ["A", "B", "C"], "hint").unwrap_err();
        assert_eq!(
            err,
            "workloadIdentity aws-web-identity: B, C not set in the sidecar's environment (hint)"
        );
    }
}

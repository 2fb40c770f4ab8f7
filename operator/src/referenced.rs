//! Objects whose values the operator reads only when a resource references them:
//! Secrets (API keys, CA certificates) and ConfigMaps (CA bundles). A metadata-only
//! cache (`PartialObjectMeta`: no values) tells which exist at which resourceVersion;
//! the value of a referenced one is read with a `get`, kept while its resourceVersion
//! stays the cache's, and forgotten once nothing references it. So the operator never
//! holds the other Secrets or ConfigMaps of the namespaces it serves.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use k8s_openapi::NamespaceResourceScope;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource};

/// The metadata cache of one kind and the values read of it.
pub struct Referenced<K: Resource<DynamicType = ()> + 'static> {
    /// Which objects exist, at which resourceVersion.
    pub meta: Store<PartialObjectMeta<K>>,
    /// Values read, by namespace and name.
    values: Mutex<HashMap<(String, String), K>>,
}

impl<K> Referenced<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    /// Values read against the metadata in `meta`.
    pub fn new(meta: Store<PartialObjectMeta<K>>) -> Self {
        Referenced {
            meta,
            values: Mutex::new(HashMap::new()),
        }
    }

    fn values(&self) -> MutexGuard<'_, HashMap<(String, String), K>> {
        self.values.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The namespace's values read, while their resourceVersion is still current.
    pub fn current(&self, namespace: &str) -> Vec<K> {
        self.values()
            .iter()
            .filter(|((ns, _), _)| ns == namespace)
            .filter(|(_, obj)| self.is_current(obj))
            .map(|(_, obj)| obj.clone())
            .collect()
    }

    /// The names of the namespace's objects whose values are held, sorted.
    pub fn held(&self, namespace: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .values()
            .keys()
            .filter(|(ns, _)| ns == namespace)
            .map(|(_, name)| name.clone())
            .collect();
        names.sort();
        names
    }

    /// Whether a value read earlier is still the one the metadata cache holds.
    fn is_current(&self, obj: &K) -> bool {
        let meta = obj.meta();
        let (Some(name), Some(ns)) = (&meta.name, &meta.namespace) else {
            return false;
        };
        self.meta
            .get(&ObjectRef::new(name).within(ns))
            .is_some_and(|m| m.metadata.resource_version == meta.resource_version)
    }

    /// Forgets the namespace's values that are not in `used`; whether any was.
    pub fn forget_unused(&self, namespace: &str, used: &BTreeSet<String>) -> bool {
        let mut values = self.values();
        let before = values.len();
        values.retain(|(ns, name), _| ns != namespace || used.contains(name));
        before != values.len()
    }

    /// Of the objects `used`, those that exist but whose current value is not held.
    pub fn unread(&self, namespace: &str, used: impl IntoIterator<Item = String>) -> Vec<String> {
        used.into_iter()
            .filter(|name| {
                let exists = self
                    .meta
                    .get(&ObjectRef::new(name).within(namespace))
                    .is_some();
                let fresh = self
                    .values()
                    .get(&(namespace.to_owned(), name.clone()))
                    .is_some_and(|obj| self.is_current(obj));
                exists && !fresh
            })
            .collect()
    }

    /// Reads the values of `names`; whether any was read (a new input). A failed read
    /// is logged and left for the next change.
    pub async fn read(&self, client: &Client, namespace: &str, names: Vec<String>) -> bool {
        let api: Api<K> = Api::namespaced(client.clone(), namespace);
        let mut read = false;
        for name in names {
            match api.get_opt(&name).await {
                Ok(Some(obj)) => {
                    self.values().insert((namespace.to_owned(), name), obj);
                    read = true;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(namespace, kind = %K::kind(&()), name = %name, error = %e, "cannot read a referenced object; retrying at the next change")
                }
            }
        }
        read
    }
}

//! Each model's cache carried from one routing table to the next, as deployment state
//! is: a reload keeps a model's answers, with its new limits applied. A model whose
//! answers may now differ (its deployments' providers, upstream models or endpoints,
//! its `defaultMaxTokens` or `dropUnsupportedParams` changed) starts empty; a model
//! that is gone, or no longer caches, drops its answers with the last table holding it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::Store;
use crate::config::snapshot::{CacheSpec, ModelSpec};

type Carried = HashMap<String, ([u8; 32], Arc<Store>)>;

/// The caches of the routing table in use, by model, each with the fingerprint of what
/// its answers came from.
#[derive(Default)]
pub struct Caches {
    by_model: Mutex<Carried>,
}

/// The caches of a routing table being built. Nothing changes until
/// [`commit`](Rebuild::commit): a snapshot that is refused leaves the caches in use as
/// they were.
pub struct Rebuild<'a> {
    carried: MutexGuard<'a, Carried>,
    next: Carried,
    /// Carried caches to reconfigure: their new limits, and whether they start empty.
    changes: Vec<(Arc<Store>, CacheSpec, bool)>,
}

impl Caches {
    /// Starts building the caches of the next table.
    pub fn rebuild(&self) -> Rebuild<'_> {
        Rebuild {
            carried: self.by_model.lock().unwrap_or_else(PoisonError::into_inner),
            next: HashMap::new(),
            changes: Vec::new(),
        }
    }
}

impl Rebuild<'_> {
    /// The cache of the model `spec` describes: the one it had, or a new one; `None`
    /// when it has none. A bad limit is refused: the field and why.
    pub fn model(
        &mut self,
        spec: &ModelSpec,
    ) -> Result<Option<Arc<Store>>, (&'static str, String)> {
        let Some(limits) = spec.cache else {
            return Ok(None);
        };
        limits.check()?;
        let fingerprint = answers_fingerprint(spec);
        let store = match self.carried.get(&spec.name) {
            Some((was, store)) => {
                self.changes
                    .push((store.clone(), limits, *was != fingerprint));
                store.clone()
            }
            None => Arc::new(Store::new(limits)),
        };
        self.next
            .insert(spec.name.clone(), (fingerprint, store.clone()));
        Ok(Some(store))
    }

    /// The table was built: carried caches take their new limits, and the next reload
    /// carries these.
    pub fn commit(mut self) {
        for (store, limits, clear) in self.changes.drain(..) {
            if clear {
                store.clear();
            }
            store.configure(limits);
        }
        *self.carried = std::mem::take(&mut self.next);
    }
}

/// A digest of what a model's answers depend on besides the request.
fn answers_fingerprint(spec: &ModelSpec) -> [u8; 32] {
    let deployments: Vec<_> = spec
        .deployments
        .iter()
        .map(|d| {
            (
                d.provider,
                &d.model,
                &d.base_url,
                &d.api_version,
                &d.region,
                &d.project,
            )
        })
        .collect();
    let text = serde_json::to_vec(&(
        deployments,
        spec.default_max_tokens,
        spec.drop_unsupported_params,
    ))
    .unwrap_or_default();
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, &text).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use tokio::time::Instant;

    use super::*;
    use crate::cache::{Entry, Key};
    use crate::config::snapshot::{DeploymentSpec, ProviderKind};

    fn spec(name: &str, upstream: &str, cache: Option<CacheSpec>) -> ModelSpec {
        ModelSpec {
            cache,
            ..ModelSpec::new(
                name,
                vec![DeploymentSpec::new("d", ProviderKind::Openai, upstream)],
            )
        }
    }

    fn build(caches: &Caches, specs: &[ModelSpec]) -> Vec<Option<Arc<Store>>> {
        let mut rebuild = caches.rebuild();
        let stores = specs.iter().map(|s| rebuild.model(s).unwrap()).collect();
        rebuild.commit();
        stores
    }

    fn fill(store: &Store) {
        store.put(
            Key([1; 32]),
            Entry {
                body: Bytes::from_static(b"{}"),
                usage: None,
                usage_estimated: false,
                cost_micros: 0,
                stored: Instant::now(),
            },
        );
    }

    #[tokio::test]
    async fn caches_are_kept_across_reloads_and_emptied_when_answers_may_differ() {
        let caches = Caches::default();
        let on = Some(CacheSpec::new(60_000));
        let first = build(
            &caches,
            &[spec("a", "gpt-4o", on), spec("b", "gpt-4o", None)],
        );
        assert!(first[1].is_none(), "no cache asked for");
        let a = first[0].clone().unwrap();
        fill(&a);

        let mut smaller = CacheSpec::new(60_000);
        smaller.max_entries = 5;
        let second = build(&caches, &[spec("a", "gpt-4o", Some(smaller))]);
        let kept = second[0].clone().unwrap();
        assert!(Arc::ptr_eq(&a, &kept), "the same cache");
        assert_eq!(kept.size().0, 1, "its answers kept");

        let third = build(&caches, &[spec("a", "gpt-4.1", on)]);
        assert!(Arc::ptr_eq(&a, third[0].as_ref().unwrap()));
        assert_eq!(a.size().0, 0, "another upstream model: emptied");

        fill(&a);
        build(&caches, &[spec("a", "gpt-4.1", None)]);
        let fifth = build(&caches, &[spec("a", "gpt-4.1", on)]);
        assert!(!Arc::ptr_eq(&a, fifth[0].as_ref().unwrap()), "a new cache");
    }

    #[tokio::test]
    async fn a_refused_snapshot_changes_nothing() {
        let caches = Caches::default();
        let on = Some(CacheSpec::new(60_000));
        let a = build(&caches, &[spec("a", "gpt-4o", on)])[0]
            .clone()
            .unwrap();
        fill(&a);
        let mut rebuild = caches.rebuild();
        rebuild.model(&spec("a", "gpt-4.1", on)).unwrap();
        let bad = spec("b", "gpt-4o", Some(CacheSpec::new(0)));
        assert_eq!(rebuild.model(&bad).unwrap_err().0, "ttl");
        drop(rebuild);
        assert_eq!(a.size().0, 1, "not emptied");
        let again = build(&caches, &[spec("a", "gpt-4o", on)]);
        assert!(Arc::ptr_eq(&a, again[0].as_ref().unwrap()));
    }
}

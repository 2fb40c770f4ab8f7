//! The snapshot hub: caches every LLMModel, VirtualKey and Budget (kube-runtime
//! reflectors) and only the *metadata* of Secrets and ConfigMaps: a Secret's or
//! ConfigMap's value is read (and kept) only when a resource references it, and read
//! again when its resourceVersion moves ([`Referenced`]), so the operator never holds
//! the other Secrets and ConfigMaps of the namespaces it serves. It
//! recompiles a namespace's snapshot within moments of any change to it,
//! and publishes each namespace's snapshot on a `watch` channel that config-push
//! connections subscribe to. Controllers read the same caches to write status, and are
//! told when a namespace's problems change so dependent resources (a model whose
//! fallback was deleted, a key whose Secret appeared) get their status refreshed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use llmesh_crds::{Budget, LlmModel, VirtualKey};
use llmesh_sidecar::config::Snapshot;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::compile::{Compiled, Inputs, compile};
use crate::metrics::Metrics;
use crate::referenced::Referenced;

/// How long a burst of changes is collected before recompiling.
const DEBOUNCE: Duration = Duration::from_millis(50);

/// Caches and per-namespace snapshots.
pub struct Hub {
    /// LLMModels.
    pub models: Store<LlmModel>,
    /// VirtualKeys.
    pub keys: Store<VirtualKey>,
    /// Budgets.
    pub budgets: Store<Budget>,
    /// Secrets: which exist, and the values of the referenced ones.
    pub secrets: Referenced<Secret>,
    /// ConfigMaps (CA bundles): which exist, and the values of the referenced ones.
    pub config_maps: Referenced<ConfigMap>,
    client: Client,
    dirty: Dirty,
    namespaces: Mutex<HashMap<String, Namespace>>,
    listeners: Mutex<Vec<mpsc::UnboundedSender<String>>>,
    metrics: Metrics,
    /// True once every cache holds a full list: nothing is compiled before, since a
    /// snapshot from half-filled caches would drop models, keys or Secrets.
    synced: watch::Sender<bool>,
    /// What changed since each namespace was last compiled.
    changes: Arc<Changes>,
    /// The latest compile of each namespace, with the inputs' stamp it was made at.
    latest: Mutex<HashMap<String, (Stamp, Arc<Compiled>)>>,
}

/// Where a namespace's inputs stand: every change to them moves it.
type Stamp = (u64, u64);

/// Counts changes to the caches' contents, per namespace and for all at once (a relist
/// replaces a whole cache), so a compile can tell whether it is still current.
#[derive(Default)]
struct Changes {
    all: AtomicU64,
    by_namespace: Mutex<HashMap<String, u64>>,
}

impl Changes {
    /// Marks a change to one namespace's inputs. Called after the cache holds it.
    fn touch(&self, namespace: &str) {
        *lock(&self.by_namespace)
            .entry(namespace.to_owned())
            .or_default() += 1;
    }

    /// Marks a change that may touch every namespace.
    fn touch_all(&self) {
        self.all.fetch_add(1, Ordering::SeqCst);
    }

    /// The namespace's stamp now; read before its inputs are, so a change that races
    /// with a compile leaves that compile stale rather than taken for current.
    fn stamp(&self, namespace: &str) -> Stamp {
        let own = lock(&self.by_namespace)
            .get(namespace)
            .copied()
            .unwrap_or(0);
        (self.all.load(Ordering::SeqCst), own)
    }
}

struct Namespace {
    tx: watch::Sender<Option<Arc<Snapshot>>>,
    compiled: Option<Arc<Compiled>>,
    /// When the change that produced the current snapshot was seen.
    changed_at: Instant,
}

impl Hub {
    /// Starts the five reflectors (over one namespace, or all) and the recompile loop.
    pub fn start(client: Client, namespace: Option<&str>, metrics: Metrics) -> Arc<Hub> {
        let (dirty_tx, dirty_rx) = mpsc::unbounded_channel();
        let changes = Arc::new(Changes::default());
        let dirty = (dirty_tx.clone(), changes.clone());
        // The CRDs' status writes leave their generation: only spec changes count.
        let models = reflect::<LlmModel>(scoped(&client, namespace), dirty.clone(), true);
        let keys = reflect::<VirtualKey>(scoped(&client, namespace), dirty.clone(), true);
        let budgets = reflect::<Budget>(scoped(&client, namespace), dirty.clone(), true);
        // `Api<PartialObjectMeta<_>>` lists and watches metadata only: no values. A
        // Secret's or ConfigMap's generation does not follow its data, so every change
        // counts.
        let secrets =
            reflect::<PartialObjectMeta<Secret>>(scoped(&client, namespace), dirty.clone(), false);
        let config_maps =
            reflect::<PartialObjectMeta<ConfigMap>>(scoped(&client, namespace), dirty, false);
        let hub = Arc::new(Hub {
            models,
            keys,
            budgets,
            secrets: Referenced::new(secrets),
            config_maps: Referenced::new(config_maps),
            client,
            dirty: dirty_tx,
            namespaces: Mutex::new(HashMap::new()),
            listeners: Mutex::new(Vec::new()),
            metrics,
            synced: watch::channel(false).0,
            changes,
            latest: Mutex::new(HashMap::new()),
        });
        tokio::spawn(hub.clone().run(dirty_rx));
        hub
    }

    /// Resolves once every cache holds a full list. Any number of tasks may wait: the
    /// stores' own readiness wakes only one waiter, so only the hub's loop waits on them.
    pub async fn ready(&self) {
        let mut synced = self.synced.subscribe();
        let _ = synced.wait_for(|s| *s).await;
    }

    async fn caches_listed(&self) {
        let _ = self.models.wait_until_ready().await;
        let _ = self.keys.wait_until_ready().await;
        let _ = self.budgets.wait_until_ready().await;
        let _ = self.secrets.meta.wait_until_ready().await;
        let _ = self.config_maps.meta.wait_until_ready().await;
    }

    /// One namespace's resources from the caches.
    pub fn inputs(&self, namespace: &str) -> Inputs {
        fn of<K: Resource<DynamicType = ()> + Clone>(store: &Store<K>, ns: &str) -> Vec<K> {
            store
                .state()
                .into_iter()
                .filter(|o| o.meta().namespace.as_deref() == Some(ns))
                .map(|o| (*o).clone())
                .collect()
        }
        Inputs {
            models: of(&self.models, namespace),
            keys: of(&self.keys, namespace),
            budgets: of(&self.budgets, namespace),
            // The values read, while their resourceVersion is still the current one.
            secrets: self.secrets.current(namespace),
            config_maps: self.config_maps.current(namespace),
        }
    }

    /// The names of the namespace's Secrets whose values the operator holds: only
    /// referenced ones.
    pub fn secrets_held(&self, namespace: &str) -> Vec<String> {
        self.secrets.held(namespace)
    }

    /// The names of the namespace's ConfigMaps whose values the operator holds: only
    /// referenced ones.
    pub fn config_maps_held(&self, namespace: &str) -> Vec<String> {
        self.config_maps.held(namespace)
    }

    /// Reads the Secrets and ConfigMaps the namespace's resources reference whose value
    /// is missing or stale, and forgets the values of those no longer referenced or gone.
    async fn read_referenced(&self, namespace: &str) {
        let compiled = self.compiled(namespace);
        let forgotten = self
            .secrets
            .forget_unused(namespace, &compiled.secrets_used)
            | self
                .config_maps
                .forget_unused(namespace, &compiled.config_maps_used);
        if forgotten {
            self.changes.touch(namespace);
        }
        let secrets = self
            .secrets
            .unread(namespace, compiled.secrets_used.iter().cloned());
        let config_maps = self
            .config_maps
            .unread(namespace, compiled.config_maps_used.iter().cloned());
        let read = self.secrets.read(&self.client, namespace, secrets).await
            | self
                .config_maps
                .read(&self.client, namespace, config_maps)
                .await;
        if read {
            // A value read is an input the last compile did not have.
            self.changes.touch(namespace);
        }
    }

    /// Whether every value the namespace's resources reference and that exists is held.
    fn all_read(&self, namespace: &str) -> bool {
        let compiled = self.compiled(namespace);
        self.secrets
            .unread(namespace, compiled.secrets_used.iter().cloned())
            .is_empty()
            && self
                .config_maps
                .unread(namespace, compiled.config_maps_used.iter().cloned())
                .is_empty()
    }

    /// The namespace's compiled resources: the result the hub holds while none of the
    /// namespace's inputs changed since, else a compile from the caches (pure: no API
    /// calls), kept for the next caller.
    pub fn compiled(&self, namespace: &str) -> Arc<Compiled> {
        let stamp = self.changes.stamp(namespace);
        if let Some((at, compiled)) = lock(&self.latest).get(namespace)
            && *at == stamp
        {
            return compiled.clone();
        }
        let compiled = Arc::new(compile(&self.inputs(namespace)));
        self.metrics.compiles.inc();
        let mut latest = lock(&self.latest);
        // A slower compile of older inputs never replaces a newer one.
        let newer = latest.get(namespace).is_none_or(|(at, _)| *at <= stamp);
        if newer {
            latest.insert(namespace.to_owned(), (stamp, compiled.clone()));
        }
        compiled
    }

    /// The namespace's snapshot channel, compiling it first if nobody asked before (once
    /// the caches are synced and the referenced Secrets' values read; until then the
    /// channel stays empty).
    pub fn subscribe(&self, namespace: &str) -> watch::Receiver<Option<Arc<Snapshot>>> {
        if let Some(ns) = lock(&self.namespaces).get(namespace) {
            return ns.tx.subscribe();
        }
        if *self.synced.borrow() {
            // Published at once only when every referenced value is held: a snapshot
            // compiled before they are read would leave out the models that use them,
            // and its sidecars would answer 404 until the whole one came.
            if self.all_read(namespace) {
                self.recompile(namespace, Instant::now());
            }
            // The loop reads what is missing and publishes.
            let _ = self.dirty.send((namespace.to_owned(), Instant::now()));
        }
        // Before the caches are synced, the loop compiles every namespace asked for.
        let mut namespaces = lock(&self.namespaces);
        slot(&mut namespaces, namespace, Instant::now())
            .tx
            .subscribe()
    }

    /// When the change behind the namespace's current snapshot was seen.
    pub fn changed_at(&self, namespace: &str) -> Option<Instant> {
        lock(&self.namespaces).get(namespace).map(|n| n.changed_at)
    }

    /// A stream of namespaces whose compile problems changed.
    pub fn problem_changes(&self) -> impl futures_util::Stream<Item = String> + Send + 'static {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.listeners).push(tx);
        futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|ns| (ns, rx)) },
        )
    }

    async fn run(self: Arc<Self>, mut dirty: mpsc::UnboundedReceiver<(String, Instant)>) {
        self.caches_listed().await;
        self.synced.send_replace(true);
        tracing::info!("caches ready");
        // Namespaces subscribed to before now get their first snapshot.
        let waiting: Vec<String> = lock(&self.namespaces).keys().cloned().collect();
        for ns in waiting {
            self.read_referenced(&ns).await;
            self.recompile(&ns, Instant::now());
        }
        let mut pending: HashMap<String, Instant> = HashMap::new();
        while let Some((ns, seen)) = dirty.recv().await {
            pending.entry(ns).or_insert(seen);
            // Collect the rest of a burst (an apply of many objects) into one compile.
            let deadline = tokio::time::sleep(DEBOUNCE);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    () = &mut deadline => break,
                    more = dirty.recv() => match more {
                        Some((ns, seen)) => { pending.entry(ns).or_insert(seen); }
                        None => break,
                    },
                }
            }
            let batch: Vec<(String, Instant)> = pending.drain().collect();
            for (ns, seen) in batch {
                self.read_referenced(&ns).await;
                self.recompile(&ns, seen);
            }
        }
    }

    /// Recompiles a namespace; publishes the snapshot if it changed and tells the
    /// controllers if its problems changed.
    fn recompile(&self, namespace: &str, seen: Instant) {
        let compiled = self.compiled(namespace);
        let problems_changed;
        {
            let mut namespaces = lock(&self.namespaces);
            let entry = slot(&mut namespaces, namespace, seen);
            problems_changed = entry
                .compiled
                .as_ref()
                .is_none_or(|c| c.problems != compiled.problems);
            let version_changed = entry
                .compiled
                .as_ref()
                .is_none_or(|c| c.snapshot.version != compiled.snapshot.version);
            if version_changed {
                entry.changed_at = seen;
                let old = entry.compiled.as_ref().map(|c| c.snapshot.version.clone());
                if let Some(old) = old {
                    let _ = self
                        .metrics
                        .snapshot_version
                        .remove_label_values(&[namespace, &old]);
                }
                self.metrics
                    .snapshot_version
                    .with_label_values(&[namespace, &compiled.snapshot.version])
                    .set(1);
                entry
                    .tx
                    .send_replace(Some(Arc::new(compiled.snapshot.clone())));
                tracing::info!(namespace, version = %compiled.snapshot.version, models = compiled.snapshot.models.len(), "snapshot published");
            }
            entry.compiled = Some(compiled);
        }
        if problems_changed {
            lock(&self.listeners).retain(|tx| tx.send(namespace.to_owned()).is_ok());
        }
    }
}

/// The namespace's entry, made empty (no snapshot yet) if there is none.
fn slot<'a>(
    namespaces: &'a mut HashMap<String, Namespace>,
    namespace: &str,
    seen: Instant,
) -> &'a mut Namespace {
    namespaces
        .entry(namespace.to_owned())
        .or_insert_with(|| Namespace {
            tx: watch::channel(None).0,
            compiled: None,
            changed_at: seen,
        })
}

/// Runs a reflector for `K`, marking each changed object's namespace as changed (once
/// the cache holds the change) and dirty; with `by_generation`, an update that leaves
/// the object's generation (a status write) is no change. Without it (the metadata-only
/// caches of Secrets and ConfigMaps, read for names and resourceVersions alone), the
/// cached metadata drops annotations and managed fields: `kubectl apply`'s
/// last-applied-configuration annotation holds a whole object, values included.
fn reflect<K>(api: Api<K>, (dirty, changes): (Dirty, Arc<Changes>), by_generation: bool) -> Store<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let events = watcher(api, watcher::Config::default()).modify(move |obj: &mut K| {
        if !by_generation {
            let meta = obj.meta_mut();
            meta.annotations = None;
            meta.managed_fields = None;
        }
    });
    let stream = reflector::reflector(writer, events).default_backoff();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        // Each object's generation as last seen: a status write (the controllers' own,
        // usage intake's) leaves it, and changes nothing the compiler reads.
        let mut generations: HashMap<(String, String), i64> = HashMap::new();
        while let Some(item) = stream.next().await {
            let (obj, deleted) = match item {
                Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj)) => (obj, false),
                Ok(watcher::Event::Delete(obj)) => (obj, true),
                // A relist swaps the whole cache in at its end: every namespace may
                // have changed, including ones whose objects are gone.
                Ok(watcher::Event::Init) => {
                    generations.clear();
                    changes.touch_all();
                    continue;
                }
                Ok(watcher::Event::InitDone) => {
                    changes.touch_all();
                    continue;
                }
                Err(err) => {
                    tracing::warn!(kind = %K::kind(&()), error = %err, "watch failed; retrying");
                    continue;
                }
            };
            let Some(ns) = obj.namespace() else { continue };
            let id = (ns.clone(), obj.name_any());
            let generation = obj.meta().generation.filter(|_| by_generation);
            let same = match (deleted, generation) {
                (true, _) => {
                    generations.remove(&id);
                    false
                }
                (false, Some(g)) => generations.insert(id, g) == Some(g),
                (false, None) => false,
            };
            if !same {
                changes.touch(&ns);
                let _ = dirty.send((ns, Instant::now()));
            }
        }
    });
    reader
}

/// Where the reflectors report a namespace as changed, and when they saw it.
type Dirty = mpsc::UnboundedSender<(String, Instant)>;

/// An API over one namespace, or all of them.
pub fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_moves_with_its_own_namespace_and_with_a_relist() {
        let changes = Changes::default();
        let (a, b) = (changes.stamp("a"), changes.stamp("b"));
        changes.touch("a");
        assert_ne!(changes.stamp("a"), a);
        assert_eq!(changes.stamp("b"), b, "another namespace's change");
        let a = changes.stamp("a");
        changes.touch_all();
        assert!(changes.stamp("a") > a && changes.stamp("b") > b);
    }
}

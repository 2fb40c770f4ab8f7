//! One model's answers in memory: a map from [`Key`] to [`Entry`], bounded by entries
//! and bytes, the least recently used forgotten first, each served for the model's ttl.
//!
//! Recency is a counter stamped on an entry each time it is stored or served, and an
//! ordered map from stamp to key gives the least recently used in `O(log n)`. An entry
//! past its ttl is removed when it is looked up, or when it is among the oldest few
//! looked at on each store, so expired answers do not linger while the cache is idle
//! and full.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::key::Key;
use crate::config::snapshot::CacheSpec;
use crate::domain::Usage;

/// What one entry costs in memory besides its body: the key twice (map and order), the
/// slot, the entry and the maps' nodes, rounded up.
pub const ENTRY_OVERHEAD: u64 = 256;
/// The oldest entries looked at for expiry on each store.
const SWEEP: usize = 4;

/// One cached answer.
#[derive(Debug)]
pub struct Entry {
    /// The whole answer in the client's API, as a call without `stream` gets it.
    pub body: Bytes,
    /// The usage the upstream reported for it.
    pub usage: Option<Usage>,
    /// The usage was estimated by the sidecar (`x-llmesh-token-count: estimated`).
    pub usage_estimated: bool,
    /// What the call that stored it cost, micro-dollars: what a hit saves.
    pub cost_micros: u64,
    /// When it was stored.
    pub stored: Instant,
}

struct Slot {
    entry: Arc<Entry>,
    /// The recency stamp: its key in `Inner::order`.
    used: u64,
    size: u64,
}

struct Inner {
    spec: CacheSpec,
    entries: HashMap<Key, Slot>,
    /// Recency stamp → key, oldest first.
    order: BTreeMap<u64, Key>,
    next: u64,
    bytes: u64,
}

/// One model's cache.
pub struct Store {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (entries, bytes) = self.size();
        f.debug_struct("Store")
            .field("entries", &entries)
            .field("bytes", &bytes)
            .finish()
    }
}

impl Store {
    /// An empty cache with `spec`'s limits.
    pub fn new(spec: CacheSpec) -> Self {
        Store {
            inner: Mutex::new(Inner {
                spec,
                entries: HashMap::new(),
                order: BTreeMap::new(),
                next: 0,
                bytes: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies new limits: entries beyond them are forgotten, oldest first.
    pub fn configure(&self, spec: CacheSpec) {
        let mut inner = self.lock();
        inner.spec = spec;
        inner.evict();
    }

    /// Forgets every entry.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.entries.clear();
        inner.order.clear();
        inner.bytes = 0;
    }

    /// The largest body kept, in bytes.
    pub fn max_entry_bytes(&self) -> u64 {
        self.lock().spec.max_entry_bytes
    }

    /// Entries and bytes held.
    pub fn size(&self) -> (usize, u64) {
        let inner = self.lock();
        (inner.entries.len(), inner.bytes)
    }

    /// The entry under `key`, if it is within the ttl and, when `max_age` is given, no
    /// older than that; it becomes the most recently used.
    pub fn get(&self, key: &Key, now: Instant, max_age: Option<Duration>) -> Option<Arc<Entry>> {
        let mut inner = self.lock();
        let ttl = Duration::from_millis(inner.spec.ttl_ms);
        let age = now.saturating_duration_since(inner.entries.get(key)?.entry.stored);
        if age >= ttl {
            inner.remove(key);
            return None;
        }
        if max_age.is_some_and(|max| age > max) {
            return None;
        }
        let stamp = inner.stamp();
        let slot = inner.entries.get_mut(key)?;
        let old = std::mem::replace(&mut slot.used, stamp);
        let entry = slot.entry.clone();
        inner.order.remove(&old);
        inner.order.insert(stamp, *key);
        Some(entry)
    }

    /// Forgets the entry under `key`.
    pub fn remove(&self, key: &Key) {
        self.lock().remove(key);
    }

    /// Keeps `entry` under `key`, replacing what was there, then forgets the least
    /// recently used entries beyond the limits. An entry whose body exceeds the largest
    /// kept is not kept: answers `false`.
    pub fn put(&self, key: Key, entry: Entry) -> bool {
        let mut inner = self.lock();
        let body = entry.body.len() as u64;
        if body > inner.spec.max_entry_bytes {
            return false;
        }
        inner.remove(&key);
        inner.sweep(entry.stored);
        let size = body.saturating_add(ENTRY_OVERHEAD);
        let used = inner.stamp();
        inner.order.insert(used, key);
        inner.bytes = inner.bytes.saturating_add(size);
        inner.entries.insert(
            key,
            Slot {
                entry: Arc::new(entry),
                used,
                size,
            },
        );
        inner.evict();
        inner.entries.contains_key(&key)
    }
}

impl Inner {
    fn stamp(&mut self) -> u64 {
        self.next = self.next.wrapping_add(1);
        self.next
    }

    fn remove(&mut self, key: &Key) {
        if let Some(slot) = self.entries.remove(key) {
            self.order.remove(&slot.used);
            self.bytes = self.bytes.saturating_sub(slot.size);
        }
    }

    /// Removes the least recently used entries until the limits hold.
    fn evict(&mut self) {
        while self.entries.len() > self.spec.max_entries as usize
            || self.bytes > self.spec.max_bytes
        {
            let Some((_, key)) = self.order.pop_first() else {
                break;
            };
            if let Some(slot) = self.entries.remove(&key) {
                self.bytes = self.bytes.saturating_sub(slot.size);
            }
        }
    }

    /// Removes expired entries among the oldest few.
    fn sweep(&mut self, now: Instant) {
        let ttl = Duration::from_millis(self.spec.ttl_ms);
        let expired: Vec<Key> = self
            .order
            .values()
            .take(SWEEP)
            .filter(|k| {
                self.entries
                    .get(*k)
                    .is_some_and(|s| now.saturating_duration_since(s.entry.stored) >= ttl)
            })
            .copied()
            .collect();
        for key in expired {
            self.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ttl_ms: u64, max_entries: u32, max_bytes: u64) -> CacheSpec {
        CacheSpec {
            ttl_ms,
            max_entries,
            max_bytes,
            max_entry_bytes: max_bytes.min(1 << 20),
        }
    }

    fn entry(body: &'static str) -> Entry {
        Entry {
            body: Bytes::from_static(body.as_bytes()),
            usage: None,
            usage_estimated: false,
            cost_micros: 0,
            stored: Instant::now(),
        }
    }

    fn key(n: u8) -> Key {
        Key([n; 32])
    }

    #[tokio::test(start_paused = true)]
    async fn entries_are_served_for_the_ttl_then_forgotten() {
        let store = Store::new(spec(60_000, 10, 1 << 20));
        assert!(store.put(key(1), entry("a")));
        let now = Instant::now();
        assert_eq!(store.get(&key(1), now, None).unwrap().body, "a");
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(store.get(&key(1), Instant::now(), None).is_some());
        assert!(
            store
                .get(&key(1), Instant::now(), Some(Duration::from_secs(30)))
                .is_none(),
            "older than the client's max-age"
        );
        assert!(store.get(&key(1), Instant::now(), None).is_some(), "kept");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(store.get(&key(1), Instant::now(), None).is_none());
        assert_eq!(store.size().0, 0, "an expired entry is removed");
    }

    #[tokio::test(start_paused = true)]
    async fn the_least_recently_used_goes_first() {
        let store = Store::new(spec(60_000, 2, 1 << 20));
        store.put(key(1), entry("a"));
        store.put(key(2), entry("b"));
        // Serving 1 makes 2 the least recently used.
        assert!(store.get(&key(1), Instant::now(), None).is_some());
        store.put(key(3), entry("c"));
        assert!(store.get(&key(2), Instant::now(), None).is_none());
        assert!(store.get(&key(1), Instant::now(), None).is_some());
        assert!(store.get(&key(3), Instant::now(), None).is_some());
        assert_eq!(store.size().0, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_are_bounded_and_large_entries_are_not_kept() {
        let each = 10 + ENTRY_OVERHEAD;
        let store = Store::new(CacheSpec {
            ttl_ms: 60_000,
            max_entries: 100,
            max_bytes: 3 * each,
            max_entry_bytes: 10,
        });
        for n in 0..5 {
            assert!(store.put(key(n), entry("0123456789")));
        }
        assert_eq!(store.size(), (3, 3 * each));
        assert!(store.get(&key(1), Instant::now(), None).is_none());
        assert!(store.get(&key(4), Instant::now(), None).is_some());
        assert!(
            !store.put(key(9), entry("01234567890")),
            "over maxEntryBytes"
        );
        assert!(store.get(&key(9), Instant::now(), None).is_none());
        // Replacing an entry does not count it twice.
        assert!(store.put(key(4), entry("abcdefghij")));
        assert_eq!(store.size(), (3, 3 * each));
        // Smaller limits apply at once.
        store.configure(CacheSpec {
            max_entries: 1,
            ..spec(60_000, 1, 3 * each)
        });
        assert_eq!(store.size(), (1, each));
        assert_eq!(
            store.get(&key(4), Instant::now(), None).unwrap().body,
            "abcdefghij"
        );
        store.clear();
        assert_eq!(store.size(), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn expired_entries_are_swept_when_others_are_stored() {
        let store = Store::new(spec(1_000, 10, 1 << 20));
        store.put(key(1), entry("a"));
        store.put(key(2), entry("b"));
        tokio::time::advance(Duration::from_secs(2)).await;
        store.put(key(3), entry("c"));
        assert_eq!(store.size().0, 1, "the expired two were swept");
    }
}

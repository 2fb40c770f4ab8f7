//! The Responses API's stored responses (`store`, `previous_response_id`, `GET` and
//! `DELETE /v1/responses/{id}`), kept by the sidecar for its own pod. A central gateway
//! needs a database for this; a sidecar serves one pod, whose conversations it alone
//! sees, so memory will do: bounded in bytes, each response kept for a time to live.
//! A pod restart loses them, as a conversation held by the restarted app itself would
//! be; a client that then names a lost response gets a 404 and starts over.
//!
//! Each response is kept with the input items of its own turn and the id it continued
//! from, so a conversation costs what its turns cost, not a copy of its history per
//! turn. Continuing one walks the chain back and sends the whole history upstream.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

/// How long a response is kept by default.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// How many bytes of responses are kept by default.
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024 * 1024;
/// The longest chain of turns one call may continue (a cycle cannot form, since ids are
/// unique, but a chain is walked under the lock).
const MAX_CHAIN: usize = 10_000;

/// One turn's input and the response it got.
#[derive(Clone, Debug, Default)]
pub struct Turn {
    /// The virtual key that made it (none in a namespace without keys): only that key
    /// reads, continues or deletes it, as an OpenAI project's responses are its own.
    pub owner: Option<String>,
    /// The response this turn continued, if any.
    pub previous: Option<String>,
    /// The turn's own input items, as a JSON array.
    pub input: Bytes,
}

struct Entry {
    turn: Turn,
    response: Bytes,
    at: Instant,
}

impl Entry {
    fn size(&self) -> usize {
        self.turn.input.len()
            + self.response.len()
            + self.turn.previous.as_ref().map_or(0, String::len)
            + self.turn.owner.as_ref().map_or(0, String::len)
    }

    fn owned_by(&self, owner: Option<&str>) -> bool {
        self.turn.owner.as_deref() == owner
    }
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Ids in the order they were kept, for expiry and eviction.
    order: VecDeque<(Instant, String)>,
    bytes: usize,
}

/// Responses kept in memory.
pub struct Store {
    inner: Mutex<Inner>,
    ttl: Duration,
    max_bytes: usize,
}

/// Why a conversation cannot be continued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Missing {
    /// The response itself is unknown (never kept, deleted, expired or evicted).
    Response(String),
    /// An earlier turn of it is gone.
    Earlier(String),
}

impl Store {
    /// A store keeping `max_bytes` of responses for `ttl` each.
    pub fn new(ttl: Duration, max_bytes: usize) -> Self {
        Store {
            inner: Mutex::new(Inner::default()),
            ttl,
            max_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `response` (a Response object) and the turn that got it. A response larger
    /// than the whole store is not kept.
    pub fn put(&self, turn: Turn, response: Bytes) {
        #[derive(Deserialize)]
        struct Id {
            id: String,
        }
        let Ok(Id { id }) = serde_json::from_slice::<Id>(&response) else {
            return;
        };
        let now = Instant::now();
        let entry = Entry {
            turn,
            response,
            at: now,
        };
        let size = entry.size() + id.len();
        if size > self.max_bytes {
            return;
        }
        let mut inner = self.lock();
        inner.expire(now, self.ttl);
        while inner.bytes + size > self.max_bytes {
            if !inner.evict_oldest() {
                break;
            }
        }
        if let Some(old) = inner.entries.insert(id.clone(), entry) {
            inner.bytes -= old.size() + id.len();
        }
        inner.bytes += size;
        inner.order.push_back((now, id));
        // Deleted and replaced responses leave their place in the order behind; drop
        // those places before they outnumber the responses kept.
        if inner.order.len() > 2 * inner.entries.len() + 1024 {
            let Inner { entries, order, .. } = &mut *inner;
            order.retain(|(at, id)| entries.get(id).is_some_and(|e| e.at == *at));
        }
    }

    /// The response kept under `id` for `owner`.
    pub fn get(&self, id: &str, owner: Option<&str>) -> Option<Bytes> {
        let mut inner = self.lock();
        inner.expire(Instant::now(), self.ttl);
        inner
            .entries
            .get(id)
            .filter(|e| e.owned_by(owner))
            .map(|e| e.response.clone())
    }

    /// Forgets the response kept under `id` for `owner`; whether there was one.
    pub fn delete(&self, id: &str, owner: Option<&str>) -> bool {
        let mut inner = self.lock();
        inner.expire(Instant::now(), self.ttl);
        if !inner.entries.get(id).is_some_and(|e| e.owned_by(owner)) {
            return false;
        }
        match inner.entries.remove(id) {
            Some(entry) => {
                inner.bytes -= entry.size() + id.len();
                true
            }
            None => false,
        }
    }

    /// The conversation up to and including response `id` of `owner`, as input items:
    /// every turn's input followed by its response's output, oldest first; and the bytes
    /// kept for it, for the call's token estimate.
    pub fn history(&self, id: &str, owner: Option<&str>) -> Result<(Vec<Value>, usize), Missing> {
        // Copies of the chain's bytes, so parsing runs outside the lock.
        let mut chain: Vec<(Bytes, Bytes)> = Vec::new();
        {
            let mut inner = self.lock();
            inner.expire(Instant::now(), self.ttl);
            let mut next = Some(id.to_owned());
            while let Some(at) = next.take() {
                let Some(entry) = inner.entries.get(&at).filter(|e| e.owned_by(owner)) else {
                    return Err(if chain.is_empty() {
                        Missing::Response(at)
                    } else {
                        Missing::Earlier(at)
                    });
                };
                chain.push((entry.turn.input.clone(), entry.response.clone()));
                if chain.len() >= MAX_CHAIN {
                    break;
                }
                next.clone_from(&entry.turn.previous);
            }
        }
        #[derive(Deserialize)]
        struct Output {
            #[serde(default)]
            output: Vec<Value>,
        }
        let mut items = Vec::new();
        let bytes = chain.iter().map(|(i, r)| i.len() + r.len()).sum();
        for (input, response) in chain.iter().rev() {
            if let Ok(Value::Array(input)) = serde_json::from_slice::<Value>(input) {
                items.extend(input);
            }
            if let Ok(output) = serde_json::from_slice::<Output>(response) {
                items.extend(output.output);
            }
        }
        Ok((items, bytes))
    }
}

impl Inner {
    /// Drops responses older than `ttl`.
    fn expire(&mut self, now: Instant, ttl: Duration) {
        while let Some((at, _)) = self.order.front() {
            if now.saturating_duration_since(*at) < ttl {
                break;
            }
            self.evict_oldest();
        }
    }

    /// Drops the oldest response; false when none is left.
    fn evict_oldest(&mut self) -> bool {
        let Some((at, id)) = self.order.pop_front() else {
            return false;
        };
        // The order may name an id since deleted or kept again later.
        if self.entries.get(&id).is_some_and(|e| e.at == at)
            && let Some(entry) = self.entries.remove(&id)
        {
            self.bytes -= entry.size() + id.len();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn turn(previous: Option<&str>, input: Value) -> Turn {
        Turn {
            owner: None,
            previous: previous.map(str::to_owned),
            input: Bytes::from(input.to_string()),
        }
    }

    fn response(id: &str, text: &str) -> Bytes {
        Bytes::from(
            json!({"id": id, "object": "response", "output": [
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}
            ]})
            .to_string(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn conversations_chain_expire_and_stay_within_bytes() {
        let store = Store::new(Duration::from_secs(60), 4096);
        store.put(
            turn(None, json!([{"role": "user", "content": "a"}])),
            response("r1", "A"),
        );
        store.put(
            turn(Some("r1"), json!([{"role": "user", "content": "b"}])),
            response("r2", "B"),
        );
        let (items, _) = store.history("r2", None).unwrap();
        let texts: Vec<String> = items.iter().map(|i| i.to_string()).collect();
        assert_eq!(items.len(), 4, "{texts:?}");
        assert_eq!(items[0]["content"], "a");
        assert_eq!(items[1]["content"][0]["text"], "A");
        assert_eq!(items[2]["content"], "b");
        assert_eq!(items[3]["content"][0]["text"], "B");
        assert!(store.get("r1", None).is_some());

        assert!(store.delete("r1", None));
        assert!(!store.delete("r1", None));
        assert_eq!(
            store.history("r2", None),
            Err(Missing::Earlier("r1".into()))
        );
        assert_eq!(
            store.history("nope", None),
            Err(Missing::Response("nope".into()))
        );

        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(store.get("r2", None).is_none(), "expired");
        assert_eq!(store.lock().bytes, 0);

        // Bytes stay bounded: old responses make room for new ones.
        for i in 0..100 {
            store.put(
                turn(None, json!([{"content": "x".repeat(100)}])),
                response(&format!("r{i}"), "y"),
            );
            assert!(store.lock().bytes <= 4096);
        }
        assert!(store.get("r99", None).is_some());
        assert!(store.get("r0", None).is_none());
        // A response larger than the store is not kept.
        store.put(
            turn(None, json!([{"content": "x".repeat(5000)}])),
            response("big", "z"),
        );
        assert!(store.get("big", None).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_sees_only_its_own_responses() {
        let store = Store::new(Duration::from_secs(60), 4096);
        let mut mine = turn(None, json!([]));
        mine.owner = Some("team-a".into());
        store.put(mine, response("r1", "A"));
        assert!(store.get("r1", Some("team-a")).is_some());
        assert!(store.get("r1", Some("team-b")).is_none());
        assert!(store.get("r1", None).is_none());
        assert_eq!(
            store.history("r1", Some("team-b")),
            Err(Missing::Response("r1".into()))
        );
        assert!(!store.delete("r1", Some("team-b")));
        assert!(store.delete("r1", Some("team-a")));
    }
}

//! The response cache: exact repeats of a call answered from the sidecar's memory.
//!
//! A model opts in with `spec.cache` (see `docs/cache.md`). Each of its answers is kept
//! under a [`Key`] made of the call in a canonical form ([`key`]), scoped to the
//! virtual key that made it, in the model's [`Store`]: least recently used forgotten
//! first beyond `maxEntries` or `maxBytes`, each served for `ttl`. What is kept is the
//! whole answer in the client's API; a streamed call gets it replayed as that API's
//! stream, and a streamed answer is folded back into the whole answer to be kept
//! ([`replay`]). The request's `Cache-Control` decides whether the cache is read and
//! written ([`control`]).
//!
//! This module knows formats and memory, not requests: the server decides when to look
//! up and store (`server::cached`), and the meter charges a hit nothing.

pub mod carry;
pub mod chat;
pub mod control;
pub mod key;
pub mod messages;
pub mod replay;
pub mod responses;
pub mod store;

pub use carry::Caches;
pub use key::{Key, Uncacheable};
pub use store::{Entry, Store};

/// What the cache did for a call: the `result` label of
/// `llmesh_cache_requests_total`, from this fixed list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answered from the cache.
    Hit,
    /// Not in the cache: the answer is kept.
    Miss,
    /// Not read (`Cache-Control: no-cache`, `max-age=0`): the fresh answer is kept.
    Refresh,
    /// Neither read nor kept: `Cache-Control: no-store`, or a call that cannot be
    /// cached (`n` above 1, a Responses call that keeps state).
    Bypass,
}

impl Outcome {
    /// Every outcome, for tests and dashboards.
    pub const ALL: [Outcome; 4] = [
        Outcome::Hit,
        Outcome::Miss,
        Outcome::Refresh,
        Outcome::Bypass,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Refresh => "refresh",
            Outcome::Bypass => "bypass",
        }
    }

    /// The `x-llmesh-cache` response header: `hit`, `miss` (also for a refresh: the
    /// cache did not answer, and keeps the answer) or `bypass`.
    pub fn header(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss | Outcome::Refresh => "miss",
            Outcome::Bypass => "bypass",
        }
    }
}

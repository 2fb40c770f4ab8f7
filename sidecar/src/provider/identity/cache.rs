//! The one cache every fetched credential lives in: Google access tokens, AWS temporary
//! credentials, Entra ID tokens.
//!
//! A [`Cached`] source fetches on first use and again once less than five minutes (or
//! half the lifetime, for short-lived credentials) remain. One request refreshes while
//! the others keep using the still-valid value; a failed refresh falls back to it until
//! it expires. A fetch that failed with nothing valid left is not repeated for a second:
//! the requests arriving meanwhile get the same error at once, so an unreachable token
//! endpoint is not hammered and callers do not queue behind it.
//!
//! Each fetched value has a generation. [`Cached::invalidate`] forgets the value only if
//! it is still the generation the upstream refused, so many calls refused at once cause
//! one fetch, not one each.

use std::fmt;
use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::time::Instant;

use super::{Lease, Source};
use crate::provider::CredentialError;

/// Refresh this long before expiry (or at half the lifetime, if that is shorter).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// The longest a fetched credential is trusted, whatever its issuer says (a day), so
/// the clock arithmetic cannot overflow.
pub const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// After a failed fetch with nothing valid cached, callers get the failure for this
/// long before the next fetch is tried.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// A fetched value and how long it lives from when the fetch started.
#[derive(Clone, Debug)]
pub struct Fetched<T> {
    /// The credential.
    pub value: T,
    /// Its lifetime.
    pub lifetime: Duration,
}

/// One way of getting a credential.
pub trait Fetch: Send + Sync + 'static {
    /// What is fetched (a header value, AWS keys).
    type Value: Clone + Send + Sync + 'static;

    /// Gets a fresh value. Errors never quote a secret.
    fn fetch(&self) -> impl Future<Output = Result<Fetched<Self::Value>, String>> + Send;

    /// What this fetches, for messages: "Entra ID token for client …" (errors read
    /// "no Entra ID token for client …: why").
    fn describe(&self) -> String;
}

struct Entry<T> {
    value: T,
    generation: u64,
    refresh_at: Instant,
    expires_at: Instant,
}

impl<T: Clone> Entry<T> {
    fn lease(&self) -> Lease<T> {
        Lease {
            value: self.value.clone(),
            generation: self.generation,
        }
    }
}

struct State<T> {
    entry: Option<Entry<T>>,
    /// When the last fetch failed and why, until one succeeds.
    failed: Option<(Instant, String)>,
    generations: u64,
}

/// A fetched credential, cached and refreshed ahead of expiry.
pub struct Cached<F: Fetch> {
    fetcher: F,
    state: Mutex<State<F::Value>>,
    /// Held by the one request fetching.
    refresh: tokio::sync::Mutex<()>,
}

impl<F: Fetch + fmt::Debug> fmt::Debug for Cached<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cached")
            .field("fetcher", &self.fetcher)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<F: Fetch> Cached<F> {
    /// A cache that fetches with `fetcher` when needed.
    pub fn new(fetcher: F) -> Self {
        Cached {
            fetcher,
            state: Mutex::new(State {
                entry: None,
                failed: None,
                generations: 0,
            }),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    /// The fetcher.
    pub fn fetcher(&self) -> &F {
        &self.fetcher
    }

    /// The value to use now: cached, or freshly fetched.
    pub async fn lease(&self) -> Result<Lease<F::Value>, CredentialError> {
        let usable = {
            let state = lock(&self.state);
            let now = Instant::now();
            match &state.entry {
                Some(e) if now < e.refresh_at => return Ok(e.lease()),
                Some(e) if now < e.expires_at => Some(e.lease()),
                _ => None,
            }
        };
        // Only one request fetches; while a valid value remains, the others use it.
        let _guard = match (&usable, self.refresh.try_lock()) {
            (_, Ok(guard)) => guard,
            (Some(lease), Err(_)) => return Ok(lease.clone()),
            (None, Err(_)) => self.refresh.lock().await,
        };
        {
            // The request that held the lock may have fetched, or just failed.
            let state = lock(&self.state);
            let now = Instant::now();
            if let Some(e) = &state.entry
                && now < e.refresh_at
            {
                return Ok(e.lease());
            }
            if let Some((at, why)) = &state.failed
                && now < *at + RETRY_AFTER_FAILURE
            {
                return usable.ok_or_else(|| self.error(why));
            }
        }
        let started = Instant::now();
        let fetched = self.fetcher.fetch().await.and_then(|f| {
            if f.lifetime.is_zero() {
                Err("the credential it issued has already expired".to_owned())
            } else {
                Ok(f)
            }
        });
        match fetched {
            Ok(fetched) => {
                let lifetime = fetched.lifetime.min(MAX_LIFETIME);
                let margin = REFRESH_MARGIN.min(lifetime / 2);
                let mut state = lock(&self.state);
                state.generations += 1;
                let entry = Entry {
                    value: fetched.value,
                    generation: state.generations,
                    refresh_at: started + (lifetime - margin),
                    expires_at: started + lifetime,
                };
                let lease = entry.lease();
                state.entry = Some(entry);
                state.failed = None;
                Ok(lease)
            }
            Err(why) => {
                lock(&self.state).failed = Some((Instant::now(), why.clone()));
                match usable {
                    Some(lease) => {
                        tracing::warn!(
                            credential = %self.fetcher.describe(),
                            "refreshing the credential failed, using the current one until it expires: {why}"
                        );
                        Ok(lease)
                    }
                    None => Err(self.error(&why)),
                }
            }
        }
    }

    /// Forgets the value of `generation` if it is still the cached one.
    pub fn invalidate(&self, generation: u64) {
        let mut state = lock(&self.state);
        if state
            .entry
            .as_ref()
            .is_some_and(|e| e.generation == generation)
        {
            state.entry = None;
        }
    }

    fn error(&self, why: &str) -> CredentialError {
        CredentialError(format!("no {}: {why}", self.fetcher.describe()))
    }
}

impl<F: Fetch> Source<F::Value> for Cached<F> {
    fn lease(&self) -> BoxFuture<'_, Result<Lease<F::Value>, CredentialError>> {
        Box::pin(Cached::lease(self))
    }

    fn invalidate(&self, generation: u64) -> bool {
        Cached::invalidate(self, generation);
        true
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Answers from a script (then `tok-N` for 600 s), counting fetches.
    #[derive(Default)]
    struct Script {
        calls: AtomicUsize,
        answers: Mutex<VecDeque<Result<Duration, String>>>,
        delay: Duration,
    }

    impl Script {
        fn then(&self, answer: Result<Duration, &str>) {
            lock(&self.answers).push_back(answer.map_err(str::to_owned));
        }

        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    struct Fake(Arc<Script>);

    impl Fetch for Fake {
        type Value = String;

        async fn fetch(&self) -> Result<Fetched<String>, String> {
            let n = self.0.calls.fetch_add(1, Ordering::SeqCst) + 1;
            let answer = lock(&self.0.answers)
                .pop_front()
                .unwrap_or(Ok(Duration::from_secs(600)));
            tokio::time::sleep(self.0.delay).await;
            answer.map(|lifetime| Fetched {
                value: format!("tok-{n}"),
                lifetime,
            })
        }

        fn describe(&self) -> String {
            "test token".into()
        }
    }

    fn cached(delay: Duration) -> (Arc<Script>, Arc<Cached<Fake>>) {
        let script = Arc::new(Script {
            delay,
            ..Script::default()
        });
        (script.clone(), Arc::new(Cached::new(Fake(script))))
    }

    async fn value(source: &Cached<Fake>) -> String {
        source.lease().await.unwrap().value
    }

    #[tokio::test(start_paused = true)]
    async fn values_are_cached_and_refreshed_ahead_of_expiry() {
        let (script, source) = cached(Duration::ZERO);
        assert_eq!(value(&source).await, "tok-1");
        tokio::time::advance(Duration::from_secs(299)).await;
        assert_eq!(value(&source).await, "tok-1", "cached");
        // 600 s values are refreshed 300 s before they expire.
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(value(&source).await, "tok-2");
        assert_eq!(script.calls(), 2);
        // A 60 s value is refreshed at half its life.
        script.then(Ok(Duration::from_secs(60)));
        source.invalidate(2);
        assert_eq!(value(&source).await, "tok-3");
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(value(&source).await, "tok-4");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_refresh_keeps_the_valid_value_until_it_expires() {
        let (script, source) = cached(Duration::ZERO);
        assert_eq!(value(&source).await, "tok-1");
        tokio::time::advance(Duration::from_secs(400)).await;
        script.then(Err("invalid_grant: Invalid JWT Signature."));
        assert_eq!(value(&source).await, "tok-1");
        tokio::time::advance(Duration::from_secs(201)).await;
        script.then(Err("invalid_grant: Invalid JWT Signature."));
        let err = source.lease().await.unwrap_err().0;
        assert_eq!(err, "no test token: invalid_grant: Invalid JWT Signature.");
        // Within a second of the failure, callers get it without a fetch.
        let calls = script.calls();
        assert!(source.lease().await.is_err());
        assert_eq!(script.calls(), calls);
        tokio::time::advance(RETRY_AFTER_FAILURE).await;
        assert!(value(&source).await.starts_with("tok-"));
        assert_eq!(script.calls(), calls + 1);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_requests_share_one_fetch() {
        let (script, source) = cached(Duration::from_millis(50));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let source = source.clone();
                tokio::spawn(async move { value(&source).await })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), "tok-1");
        }
        assert_eq!(script.calls(), 1);
        // In the refresh window, one request refreshes while the others use the old one.
        tokio::time::advance(Duration::from_secs(301)).await;
        let refreshing = {
            let source = source.clone();
            tokio::spawn(async move { value(&source).await })
        };
        tokio::task::yield_now().await;
        assert_eq!(value(&source).await, "tok-1");
        assert_eq!(refreshing.await.unwrap(), "tok-2");
        assert_eq!(script.calls(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_refused_generation_is_forgotten() {
        let (script, source) = cached(Duration::ZERO);
        let first = source.lease().await.unwrap();
        assert!(Source::invalidate(&*source, first.generation));
        let second = source.lease().await.unwrap();
        assert_eq!(second.value, "tok-2");
        // A late refusal of the first value does not throw away the second.
        source.invalidate(first.generation);
        assert_eq!(value(&source).await, "tok-2");
        assert_eq!(script.calls(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn absurd_and_empty_lifetimes_are_capped_or_refused() {
        let (script, source) = cached(Duration::ZERO);
        script.then(Ok(Duration::from_secs(u64::MAX / 4)));
        assert_eq!(value(&source).await, "tok-1");
        // Refreshed within the cap, not in billions of years.
        tokio::time::advance(MAX_LIFETIME).await;
        assert_eq!(value(&source).await, "tok-2");
        source.invalidate(2);
        script.then(Ok(Duration::ZERO));
        let err = source.lease().await.unwrap_err().to_string();
        assert!(err.contains("already expired"), "{err}");
    }
}

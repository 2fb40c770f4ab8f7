//! Polling for what tests wait on: a condition that becomes true some time after an
//! action (a controller's write, a process's start), with a bound and a clear failure.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` every 100 ms until it gives a value; panics naming `what` after `secs`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

//! A snapshot file as the config source (`--config FILE`): read at start and polled for
//! changes, so an edited file is applied live. A file that fails to parse is logged and
//! the last good snapshot stays.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Snapshot;

/// Reads and parses a snapshot file (JSON).
pub fn load(path: &std::path::Path) -> Result<Snapshot, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let snapshot: Snapshot =
        serde::Deserialize::deserialize(&mut de).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(snapshot)
}

/// Publishes the file's snapshot on `tx` now and whenever its content changes.
pub async fn watch(path: PathBuf, interval: Duration, tx: watch::Sender<Option<Arc<Snapshot>>>) {
    let mut last: Option<Vec<u8>> = None;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(err) => {
                if last.is_some() {
                    tracing::warn!(file = %path.display(), error = %err, "cannot read config; keeping the last good one");
                }
                continue;
            }
        };
        if last.as_ref() == Some(&bytes) {
            continue;
        }
        match serde_json::from_slice::<Snapshot>(&bytes) {
            Ok(snapshot) => {
                tracing::info!(file = %path.display(), version = %snapshot.version, "config file loaded");
                tx.send_replace(Some(Arc::new(snapshot)));
            }
            Err(err) => {
                tracing::warn!(file = %path.display(), error = %err, "config file refused; keeping the last good one");
            }
        }
        last = Some(bytes);
    }
}

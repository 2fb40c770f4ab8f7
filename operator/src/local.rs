//! The local runner's config source: a directory of manifests, polled for changes and
//! compiled into snapshots, so the quickstart runs on the same files a cluster would.
//!
//! Polling a content hash (rather than file-system events) keeps this portable and
//! dependency-free; the directory is small and the interval is seconds.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use llmesh_sidecar::config::Snapshot;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::manifests::{LoadError, load_dir, manifest_files};

/// What one [`DirSource::reload`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The files are as last time: nothing was loaded.
    Unchanged,
    /// The files changed and compiled into a snapshot with a new version.
    Loaded(Arc<Snapshot>),
    /// The files changed but compiled into the same snapshot (e.g. a comment changed).
    SameVersion,
    /// The files changed and do not load or compile; the last good snapshot stays.
    Failed(String),
}

/// A manifest directory and the last snapshot compiled from it.
#[derive(Debug)]
pub struct DirSource {
    dir: PathBuf,
    /// Hash of the file names and contents last loaded (or of the error listing them).
    last_hash: Option<[u8; 32]>,
    current: Option<Arc<Snapshot>>,
}

impl DirSource {
    /// A source with nothing loaded yet.
    pub fn new(dir: PathBuf) -> Self {
        DirSource {
            dir,
            last_hash: None,
            current: None,
        }
    }

    /// The last good snapshot.
    pub fn current(&self) -> Option<&Arc<Snapshot>> {
        self.current.as_ref()
    }

    /// Reloads the directory if its content changed since the last call. Blocking I/O.
    pub fn reload(&mut self) -> Outcome {
        let hash = dir_hash(&self.dir);
        if self.last_hash == Some(hash) {
            return Outcome::Unchanged;
        }
        // Recorded even when the load fails, so a broken file is reported once, not on
        // every poll.
        self.last_hash = Some(hash);
        match load(&self.dir) {
            Ok(snapshot) => {
                if self.current.as_ref().map(|s| &s.version) == Some(&snapshot.version) {
                    return Outcome::SameVersion;
                }
                let snapshot = Arc::new(snapshot);
                self.current = Some(snapshot.clone());
                Outcome::Loaded(snapshot)
            }
            Err(message) => Outcome::Failed(message),
        }
    }
}

/// Loads and compiles `dir`, treating every compile problem as fatal: locally there is no
/// status to report a half-applied config in, so it is all or nothing.
fn load(dir: &Path) -> Result<Snapshot, String> {
    let compiled = load_dir(dir).map_err(|err: LoadError| err.to_string())?;
    if compiled.problems.is_empty() {
        return Ok(compiled.snapshot);
    }
    let problems: Vec<String> = compiled.problems.iter().map(ToString::to_string).collect();
    Err(format!("{}: {}", dir.display(), problems.join("; ")))
}

/// SHA-256 over the names and contents of the manifest files; a listing or read error
/// hashes its message, so an unchanged error is not reported again.
fn dir_hash(dir: &Path) -> [u8; 32] {
    let mut hasher = Sha256::new();
    match manifest_files(dir) {
        Ok(files) => {
            for file in files {
                hasher.update(file.as_os_str().as_encoded_bytes());
                hasher.update([0]);
                match std::fs::read(&file) {
                    Ok(bytes) => {
                        hasher.update((bytes.len() as u64).to_le_bytes());
                        hasher.update(&bytes);
                    }
                    Err(err) => hasher.update(err.to_string()),
                }
            }
        }
        Err(err) => hasher.update(err.to_string()),
    }
    hasher.finalize().into()
}

/// Loads `dir` at once, then every `interval`: a good load with a new version replaces
/// the snapshot in `tx` (logged at `info`), a bad one is logged at `warn` and the last
/// good snapshot stays. Returns when every receiver is gone.
pub async fn watch_dir(dir: PathBuf, interval: Duration, tx: watch::Sender<Option<Arc<Snapshot>>>) {
    let mut source = DirSource::new(dir);
    loop {
        let step = tokio::task::spawn_blocking(move || {
            let outcome = source.reload();
            (source, outcome)
        })
        .await;
        let outcome;
        (source, outcome) = match step {
            Ok(step) => step,
            Err(err) => {
                tracing::error!(error = %err, "manifest reload task failed; no longer watching");
                return;
            }
        };
        match outcome {
            Outcome::Loaded(snapshot) => {
                tracing::info!(
                    dir = %source.dir.display(),
                    version = %snapshot.version,
                    models = snapshot.models.len(),
                    keys = snapshot.keys.len(),
                    budgets = snapshot.budgets.len(),
                    "loaded config"
                );
                tx.send_replace(Some(snapshot));
            }
            Outcome::Failed(error) => {
                tracing::warn!(%error, "config not loaded; keeping the last good one");
            }
            Outcome::Unchanged | Outcome::SameVersion => {}
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = tx.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "llmesh-local-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn write(&self, name: &str, text: &str) {
            std::fs::write(self.0.join(name), text).unwrap();
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn model(name: &str, weight: &str) -> String {
        format!(
            "apiVersion: llmesh.io/v1alpha1\nkind: LLMModel\nmetadata: {{name: {name}}}\nspec:\n  \
             deployments:\n  - {{name: d, provider: demo, model: echo, weight: {weight}}}\n"
        )
    }

    fn loaded(outcome: Outcome) -> Arc<Snapshot> {
        match outcome {
            Outcome::Loaded(snapshot) => snapshot,
            other => panic!("expected a load, got {other:?}"),
        }
    }

    #[test]
    fn reload_follows_the_directory_and_keeps_the_last_good_snapshot() {
        let dir = TempDir::new();
        dir.write("models.yaml", &model("chat", "1"));
        dir.write("README.md", "not a manifest");
        let mut source = DirSource::new(dir.0.clone());

        let first = loaded(source.reload());
        assert_eq!(first.models[0].name, "chat");
        assert_eq!(source.reload(), Outcome::Unchanged);

        // A comment changes the files, not the snapshot.
        dir.write("models.yaml", &format!("# hello\n{}", model("chat", "1")));
        assert_eq!(source.reload(), Outcome::SameVersion);

        dir.write("models.yaml", &model("chat", "x"));
        let Outcome::Failed(error) = source.reload() else {
            panic!("expected a failure");
        };
        assert!(
            error.contains(
                "models.yaml: document 1 (LLMModel \"chat\"): spec.deployments[0].weight"
            ),
            "{error}"
        );
        assert_eq!(source.current(), Some(&first));
        assert_eq!(
            source.reload(),
            Outcome::Unchanged,
            "a failure is reported once"
        );

        dir.write("more.yml", &model("other", "2"));
        dir.write("models.yaml", &model("chat", "2"));
        let second = loaded(source.reload());
        assert_ne!(second.version, first.version);
        assert_eq!(second.models.len(), 2);
        assert_eq!(source.current(), Some(&second));
    }

    #[test]
    fn compile_problems_fail_the_load() {
        let dir = TempDir::new();
        dir.write(
            "models.yaml",
            &format!("{}  fallbacks: [ghost]\n", model("chat", "1")),
        );
        let mut source = DirSource::new(dir.0.clone());
        let Outcome::Failed(error) = source.reload() else {
            panic!("expected a failure");
        };
        assert!(
            error.contains(
                "LLMModel \"chat\": spec.fallbacks[0]: LLMModel \"ghost\" does not exist"
            ),
            "{error}"
        );
        assert_eq!(source.current(), None);
    }

    #[tokio::test]
    async fn watch_dir_publishes_loads_and_stops_with_its_receivers() {
        let dir = TempDir::new();
        dir.write("models.yaml", &model("chat", "1"));
        let (tx, mut rx) = watch::channel(None);
        let task = tokio::spawn(watch_dir(dir.0.clone(), Duration::from_millis(10), tx));

        rx.changed().await.unwrap();
        let first = rx.borrow_and_update().clone().unwrap();
        assert_eq!(first.models[0].deployments[0].weight, 1);

        dir.write("models.yaml", &model("chat", "5"));
        rx.changed().await.unwrap();
        let second = rx.borrow_and_update().clone().unwrap();
        assert_eq!(second.models[0].deployments[0].weight, 5);

        drop(rx);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }
}

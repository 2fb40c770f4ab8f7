//! The sidecar-wide CA files (`--ca-file`): read at start, where a bad file stops the
//! sidecar, and polled afterwards, where a changed file applies and a bad one is logged
//! while the last good CAs stay.
//!
//! Polling the bytes, as the operator's CA file is read on every connect
//! (`config::trust`), follows the kubelet's atomic symlink swap of a mounted ConfigMap
//! or Secret with no file watcher; the files are a few KiB and read every
//! [`POLL`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::tls::{PemError, Trust, parse_pem};
use super::transports::Transports;

/// How often the files are read again.
pub const POLL: Duration = Duration::from_secs(10);

/// Why a CA file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    /// The file could not be read.
    #[error("--ca-file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file holds no usable CA certificate.
    #[error("--ca-file {}: {source}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: PemError,
    },
}

/// The sidecar-wide trust: `--ca-file`'s files and `--system-roots`, and the bytes
/// they were read from.
#[derive(Debug)]
pub struct CaFiles {
    paths: Vec<PathBuf>,
    system_roots: bool,
    /// The files' contents when last read, to see a change.
    last: Vec<Vec<u8>>,
}

impl CaFiles {
    /// Reads `paths` (blocking: at start) into the trust every deployment gets.
    pub fn load(paths: Vec<PathBuf>, system_roots: bool) -> Result<(CaFiles, Trust), CaFileError> {
        let mut last = Vec::with_capacity(paths.len());
        for path in &paths {
            let bytes = std::fs::read(path).map_err(|source| CaFileError::Read {
                path: path.clone(),
                source,
            })?;
            last.push(bytes);
        }
        let files = CaFiles {
            paths,
            system_roots,
            last,
        };
        let trust = files.trust(&files.last)?;
        Ok((files, trust))
    }

    fn trust(&self, contents: &[Vec<u8>]) -> Result<Trust, CaFileError> {
        let mut trust = Trust {
            extra: Vec::new(),
            system_roots: self.system_roots,
        };
        for (path, bytes) in self.paths.iter().zip(contents) {
            let certs = parse_pem(bytes).map_err(|source| CaFileError::Pem {
                path: path.clone(),
                source,
            })?;
            trust = trust.with(&Trust {
                extra: certs,
                system_roots: false,
            });
        }
        Ok(trust)
    }

    /// The trust of the files as they are now, when their contents changed since the
    /// last read; an unreadable or bad file is an error once per change.
    pub async fn changed(&mut self) -> Result<Option<Trust>, CaFileError> {
        let mut contents = Vec::with_capacity(self.paths.len());
        for path in &self.paths {
            contents.push(read(path).await?);
        }
        if contents == self.last {
            return Ok(None);
        }
        // Recorded before parsing: a bad file is reported once, not at every poll.
        self.last = contents;
        self.trust(&self.last).map(Some)
    }

    /// Polls the files every [`POLL`]; each good change becomes the base of
    /// `transports` and resolves the future, so the caller rebuilds its routes with the
    /// new clients. Never resolves when there are no files.
    pub async fn next_change(&mut self, transports: &Transports) {
        if self.paths.is_empty() {
            return std::future::pending().await;
        }
        // The last problem logged: a file that stays unreadable is reported once.
        let mut reported: Option<String> = None;
        loop {
            tokio::time::sleep(POLL).await;
            let problem = match self.changed().await {
                Ok(None) => continue,
                Ok(Some(trust)) => match transports.set_base(trust) {
                    Ok(()) => {
                        tracing::info!(
                            files = ?self.paths,
                            "a CA file changed; new upstream connections trust its CAs"
                        );
                        return;
                    }
                    Err(error) => error.to_string(),
                },
                Err(error) => error.to_string(),
            };
            if reported.as_ref() != Some(&problem) {
                tracing::warn!(error = %problem, "cannot use the changed CA files; keeping the last good ones");
                reported = Some(problem);
            }
        }
    }
}

async fn read(path: &Path) -> Result<Vec<u8>, CaFileError> {
    tokio::fs::read(path)
        .await
        .map_err(|source| CaFileError::Read {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::demo::DemoTransport;

    use crate::upstream::tls::test_ca_pem as ca_pem;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("llmesh-ca-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    #[tokio::test]
    async fn a_change_is_seen_once_and_a_bad_one_is_reported_once() {
        let (a, b) = (temp("a.pem"), temp("b.pem"));
        std::fs::write(&a, ca_pem("a")).unwrap();
        std::fs::write(&b, format!("{}{}", ca_pem("b1"), ca_pem("b2"))).unwrap();
        let (mut files, trust) = CaFiles::load(vec![a.clone(), b.clone()], true).unwrap();
        assert_eq!(trust.extra.len(), 3);
        assert!(trust.system_roots);
        assert!(files.changed().await.unwrap().is_none());

        std::fs::write(&a, ca_pem("a2")).unwrap();
        let changed = files.changed().await.unwrap().unwrap();
        assert_eq!(changed.extra.len(), 3);
        assert_ne!(changed, trust);
        assert!(files.changed().await.unwrap().is_none());

        std::fs::write(&b, "garbage").unwrap();
        let err = files.changed().await.unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("--ca-file {}: holds no PEM", b.display())),
            "{err}"
        );
        assert!(files.changed().await.unwrap().is_none(), "reported once");
        std::fs::remove_file(&b).unwrap();
        assert!(matches!(
            files.changed().await,
            Err(CaFileError::Read { .. })
        ));
        assert!(matches!(
            CaFiles::load(vec![b], false),
            Err(CaFileError::Read { .. })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_good_change_becomes_the_base_of_every_client() {
        let path = temp("base.pem");
        std::fs::write(&path, ca_pem("first")).unwrap();
        let (mut files, trust) = CaFiles::load(vec![path.clone()], false).unwrap();
        let transports =
            Transports::with_default(std::sync::Arc::new(DemoTransport), trust.clone());
        std::fs::write(&path, ca_pem("second")).unwrap();
        files.next_change(&transports).await;
        let base = transports.base();
        assert_eq!(base.extra.len(), 1);
        assert_ne!(base, trust);
    }
}

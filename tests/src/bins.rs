//! The workspace's binaries for tests of another package: a crate's integration tests
//! can only name their own package's binaries (`CARGO_BIN_EXE_*`).

use std::path::PathBuf;
use std::process::Command;

/// `target/<profile>/<name>` beside the running test, built with `cargo build -p
/// <package> --bin <name>` first when it is missing or older than the test itself (only
/// one package's tests are being run, after an edit: a stale binary would test old code).
pub fn workspace_bin(package: &str, name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test> → target/<profile>
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(PathBuf::from)
        .unwrap_or_default();
    let bin = dir.join(name);
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let stale = match (modified(&bin), modified(&exe)) {
        (Some(bin), Some(test)) => bin < test,
        _ => true,
    };
    if stale {
        eprintln!("building {name} for this test");
        let built = Command::new(env!("CARGO"))
            .args(["build", "-p", package, "--bin", name])
            .status()
            .is_ok_and(|s| s.success());
        assert!(built, "cannot build {name}");
    }
    bin
}

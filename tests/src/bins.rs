//! The workspace's binaries for tests of another package: a crate's integration tests
//! can only name their own package's binaries (`CARGO_BIN_EXE_*`).

use std::path::PathBuf;
use std::process::Command;

/// `target/<profile>/<name>` beside the running test, built with `cargo build -p
/// <package> --bin <name>` (in the test's own profile and target directory) first when it
/// is missing or older than the test itself (only one package's tests are being run,
/// after an edit: a stale binary would test old code).
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
        // Into the same target directory and profile as the test, so the binary lands
        // where it is looked for: `target/debug` is the `dev` profile's directory.
        let profile = match dir.file_name().and_then(|p| p.to_str()) {
            Some("debug") | None => "dev",
            Some(other) => other,
        };
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "-p", package, "--bin", name, "--profile", profile]);
        if let Some(target) = dir.parent() {
            build.arg("--target-dir").arg(target);
        }
        let built = build.status().is_ok_and(|s| s.success());
        assert!(built, "cannot build {name}");
    }
    bin
}

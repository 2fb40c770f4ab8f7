//! Replays the committed fuzz corpus (`sidecar/fuzz/corpus/<target>/*`) through the
//! same entry points the fuzz targets call, on stable, with every test run: inputs that
//! once crashed a target (saved there as regressions) keep passing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use llmesh_sidecar::fuzz::TARGETS;

#[test]
fn every_corpus_input_passes_its_target() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (name, target) in TARGETS {
        let dir = root.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no corpus for {name}");
        for file in files {
            let data = std::fs::read(&file).unwrap();
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name}: {} panics", file.display());
        }
    }
}

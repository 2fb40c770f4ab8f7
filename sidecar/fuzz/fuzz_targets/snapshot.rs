//! Fuzz target `snapshot`: see `llmesh_sidecar::fuzz::snapshot`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| llmesh_sidecar::fuzz::snapshot(data));

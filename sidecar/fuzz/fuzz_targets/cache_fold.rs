//! Fuzz target `cache_fold`: see `llmesh_sidecar::fuzz::cache_fold`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| llmesh_sidecar::fuzz::cache_fold(data));

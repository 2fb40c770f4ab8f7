//! Fuzz target `retry_after`: see `llmesh_sidecar::fuzz::retry_after`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| llmesh_sidecar::fuzz::retry_after(data));

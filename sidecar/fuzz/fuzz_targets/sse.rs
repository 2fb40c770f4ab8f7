//! Fuzz target `sse`: see `llmesh_sidecar::fuzz::sse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| llmesh_sidecar::fuzz::sse(data));

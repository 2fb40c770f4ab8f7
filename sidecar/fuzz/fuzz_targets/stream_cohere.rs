//! Fuzz target `stream_cohere`: see `llmesh_sidecar::fuzz::stream_cohere`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| llmesh_sidecar::fuzz::stream_cohere(data));

//! Fuzz target `stream_anthropic`: see `llmesh_sidecar::fuzz::stream_anthropic`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| llmesh_sidecar::fuzz::stream_anthropic(data));

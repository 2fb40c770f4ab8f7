//! Fuzz target `stream_gemini`: see `llmesh_sidecar::fuzz::stream_gemini`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| llmesh_sidecar::fuzz::stream_gemini(data));

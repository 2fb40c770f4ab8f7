//! Fuzz target `openai_request`: see `llmesh_sidecar::fuzz::openai_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| llmesh_sidecar::fuzz::openai_request(data));

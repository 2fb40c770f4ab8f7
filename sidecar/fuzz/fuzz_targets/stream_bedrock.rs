//! Fuzz target `stream_bedrock`: see `llmesh_sidecar::fuzz::stream_bedrock`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| llmesh_sidecar::fuzz::stream_bedrock(data));

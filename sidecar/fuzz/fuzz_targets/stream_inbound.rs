//! Fuzz target `stream_inbound`: see `llmesh_sidecar::fuzz::stream_inbound`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| llmesh_sidecar::fuzz::stream_inbound(data));
